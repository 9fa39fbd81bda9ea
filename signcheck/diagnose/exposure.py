"""What Kyverno never sees: namespaces its pod webhooks leave out or its resourceFilters skip,
pods skipped by name or by label, requests let through by the ConfigMap's matchConditions, and
requesters excluded outright. Also the helpers every posture check builds findings with."""

from __future__ import annotations

from signcheck.diagnose import kyvernoconf, webhooks
from signcheck.diagnose.clusterstate import ClusterState
from signcheck.redact import redact
from signcheck.verdict.model import Finding, Severity

DOCS_CONFIG = "https://kyverno.io/docs/installation/customization/"
DOCS_POLICY_SETTINGS = "https://kyverno.io/docs/writing-policies/policy-settings/"
DOCS_VERIFY_IMAGES = "https://kyverno.io/docs/writing-policies/verify-images/"
DOCS_ADMISSION = (
    "https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/"
)


def finding(
    id: str,
    title: str,
    severity: Severity,
    remediation: str,
    reference: str,
    evidence: str,
) -> Finding:
    return Finding(
        id,
        title,
        severity,
        remediation,
        reference=reference,
        source="posture",
        evidence=redact(evidence),
    )


def listing(items: list[str], most: int = 12) -> str:
    shown = ", ".join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


# -- 2. namespaces and pods Kyverno never sees --------------------------------------------


def _unseen(state: ClusterState) -> dict[str, list[str]]:
    """Namespace -> why Kyverno never sees its pods, by Kyverno's configuration.

    Only the configuration counts: the `webhooks` namespaceSelector of Kyverno's ConfigMap,
    which Kyverno puts on every resource webhook it registers, and whole-namespace
    resourceFilters. A live webhook's own selector also carries the scope of the policy it
    serves (an ImageValidatingPolicy's fine-grained webhook selects only that policy's
    namespaces): a namespace outside every policy is not one Kyverno is blind to."""
    assert state.namespaces is not None
    why: dict[str, list[str]] = {}
    if state.config.webhooks:
        selector = state.config.webhooks.get("namespaceSelector")
        # The general webhooks first: the fine-grained ones are per policy.
        names = sorted(
            {str(h.get("name")) for _, h in state.kyverno_pod_webhooks()},
            key=lambda n: (n.startswith("ivpol."), n),
        )
        carried = f" (on {', '.join(names[:3])}{'...' if len(names) > 3 else ''})" if names else ""
        for ns in webhooks.unselected(selector, state.namespaces):
            why.setdefault(ns, []).append(
                f"the namespaceSelector in ConfigMap {state.configmap_name}'s `webhooks`{carried}"
            )
    for entry in state.config.pod_filters:
        if entry.every_name:
            for ns in entry.namespaces(sorted(state.namespaces)):
                why.setdefault(ns, []).append(f"resourceFilters entry {entry.text}")
    return why


def unseen_namespaces(state: ClusterState) -> list[Finding]:
    if state.namespaces is None:
        return []
    why = _unseen(state)
    system = kyvernoconf.system_namespaces(state.kyverno_namespace)
    ordinary = sorted(ns for ns in why if ns not in system)
    quiet = sorted(ns for ns in why if ns in system)
    found: list[Finding] = []
    if ordinary:
        found.append(
            finding(
                "POSTURE-UNSEEN-NAMESPACES",
                f"Kyverno never sees pods in namespace{'s' if len(ordinary) > 1 else ''} "
                f"{listing(ordinary)}: any image runs there unverified",
                "high",
                "remove these namespaces from the `webhooks` namespaceSelector and from "
                f"`resourceFilters` in ConfigMap {state.kyverno_namespace}/"
                f"{state.configmap_name} (Helm: config.webhooks, config.resourceFilters), or "
                "keep pod-creating rights there to cluster administrators",
                DOCS_CONFIG,
                "; ".join(f"{ns}: {', '.join(why[ns])}" for ns in ordinary),
            )
        )
    if quiet:
        found.append(
            finding(
                "POSTURE-SYSTEM-NAMESPACES",
                f"Kyverno never sees pods in the system namespace{'s' if len(quiet) > 1 else ''}"
                f" {listing(quiet)} (the chart's default exclusions)",
                "info",
                "keep the right to create pods in these namespaces to cluster administrators; "
                "run no workloads there",
                DOCS_CONFIG,
                "; ".join(f"{ns}: {', '.join(why[ns])}" for ns in quiet),
            )
        )
    found += _name_filters(state, system)
    found += _object_selectors(state)
    return found


def _name_filters(state: ClusterState, system: frozenset[str]) -> list[Finding]:
    assert state.namespaces is not None
    hits = []
    for entry in state.config.pod_filters:
        if entry.every_name:
            continue
        spaces = [ns for ns in entry.namespaces(sorted(state.namespaces)) if ns not in system]
        if spaces:
            hits.append(f"{entry.text} (namespaces {listing(spaces)})")
    if not hits:
        return []
    return [
        finding(
            "POSTURE-RESOURCEFILTER-PODS",
            f"Kyverno skips pods by name: {listing(hits)}; whoever creates a pod chooses its name",
            "high",
            f"remove these entries from `resourceFilters` in ConfigMap "
            f"{state.kyverno_namespace}/{state.configmap_name} (Helm: config.resourceFilters)",
            DOCS_CONFIG,
            "resourceFilters: " + "; ".join(hits),
        )
    ]


def _object_selectors(state: ClusterState) -> list[Finding]:
    selected = [
        (c, w)
        for c, w in state.kyverno_pod_webhooks()
        if not webhooks.selector_is_empty(w.get("objectSelector"))
    ]
    if not selected:
        return []
    return [
        finding(
            "POSTURE-OBJECT-SELECTOR",
            "Kyverno's pod webhooks have an objectSelector: a pod whose labels do not match it "
            "is never sent to Kyverno, and the pod's author sets its labels",
            "high",
            "remove the objectSelector from the `webhooks` key of ConfigMap "
            f"{state.kyverno_namespace}/{state.configmap_name} (Helm: config.webhooks."
            "objectSelector)",
            DOCS_CONFIG,
            "; ".join(
                f"{w.get('name')} ({webhooks.name_of(c)}): objectSelector {w.get('objectSelector')}"
                for c, w in selected
            ),
        )
    ]


def match_conditions(state: ClusterState) -> list[Finding]:
    conditions = state.config.match_conditions
    if not conditions:
        return []
    return [
        finding(
            "POSTURE-MATCH-CONDITIONS",
            f"ConfigMap {state.configmap_name} sets matchConditions: requests they reject are "
            "never sent to Kyverno",
            "low",
            "check that no condition can be met by a pod its author shapes (labels, "
            "annotations, names); remove `matchConditions` from the ConfigMap if unsure",
            DOCS_CONFIG,
            "; ".join(f"{c.get('name')}: {c.get('expression')}" for c in conditions),
        )
    ]


# -- 3. requesters Kyverno lets through ---------------------------------------------------


def excluded_requesters(state: ClusterState) -> list[Finding]:
    extra = {k: e for k, e in state.config.exclusions.items() if e.beyond_default}
    if not extra:
        return []
    broad = [f"{k}: {p}" for k, e in extra.items() for p in e.broad()]
    listed = [f"{k}: {', '.join(e.beyond_default)}" for k, e in extra.items()]
    return [
        finding(
            "POSTURE-EXCLUDED-REQUESTERS",
            "Kyverno lets requests by these through unchecked: " + "; ".join(listed),
            "high" if broad else "medium",
            f"remove these entries from ConfigMap {state.kyverno_namespace}/"
            f"{state.configmap_name} (Helm: config.excludeGroups, excludeUsernames, "
            "excludeRoles, excludeClusterRoles); the chart's default is only "
            "`excludeGroups: system:nodes`",
            DOCS_CONFIG,
            "; ".join(
                f"{k}: excluded {e.excluded}, re-included {e.included}" for k, e in extra.items()
            )
            + (f"; matching everyone or the pod controllers: {', '.join(broad)}" if broad else ""),
        )
    ]

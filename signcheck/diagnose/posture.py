"""Posture checks: what in a cluster's configuration lets an unverified image through Kyverno
without any test seeing it happen, each as a `Finding` (source `posture`) with a remediation.

`check()` reads the cluster once (`clusterstate.read`), then runs the checks over what it
read. It never raises for a missing object, a forbidden read or an API the cluster does not
serve: what it could not read becomes an `info` finding (POSTURE-UNREADABLE) and is named in
the facts, and no check names a cause it did not observe.

Ids and severities (definitions in `signcheck.verdict.model`):

| id | severity |
|---|---|
| POSTURE-UNSEEN-NAMESPACES | high: ordinary namespaces whose pods Kyverno never sees |
| POSTURE-RESOURCEFILTER-PODS | high: resourceFilters skipping pods by name |
| POSTURE-OBJECT-SELECTOR | high: pod labels (the pod author's) decide if Kyverno sees it |
| POSTURE-EXCLUDED-REQUESTERS | high (everyone, the pod controllers) or medium (named ones) |
| POSTURE-ADVISORY-<GHSA id> | per advisory (`advisories.ADVISORIES`), info when mitigated here |
| POSTURE-FAILOPEN | medium: a Kyverno webhook on pods with failurePolicy Ignore |
| POSTURE-FORCE-FAILURE-POLICY-IGNORE | medium: --forceFailurePolicyIgnore |
| POSTURE-VERIFY-CACHE | medium: verification results cached (--imageVerifyCacheEnabled) |
| POSTURE-MATCH-CONDITIONS | low: the ConfigMap's matchConditions |
| POSTURE-OTHER-ADMISSION | low (something mutates pods) or info (only validates) |
| POSTURE-SYSTEM-NAMESPACES | info: the chart's default exclusions, by name |
| POSTURE-NO-POD-WEBHOOK | info: Kyverno has no webhook for pods registered |
| POSTURE-VERSION-UNKNOWN | info: the advisories could not be matched |
| POSTURE-UNREADABLE | info: what could not be read, and why |
| POSTURE-CHECK-ERROR | info: a check itself failed (its error, so the report is still whole) |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from signcheck.clients.k8s import Cluster
from signcheck.diagnose import advisories, webhooks
from signcheck.diagnose.clusterstate import ClusterState, read
from signcheck.diagnose.exposure import (
    DOCS_ADMISSION,
    DOCS_CONFIG,
    DOCS_POLICY_SETTINGS,
    DOCS_VERIFY_IMAGES,
    excluded_requesters,
    finding,
    listing,
    match_conditions,
    unseen_namespaces,
)
from signcheck.verdict.model import Finding

CACHE_ADVISORY = next(a for a in advisories.ADVISORIES if a.id == "GHSA-2r43-6962-xcw5")


# -- 1. fail-open ------------------------------------------------------------------------


def failopen(state: ClusterState) -> list[Finding]:
    found: list[Finding] = []
    pod_hooks = state.kyverno_pod_webhooks()
    if state.webhooks_read and not pod_hooks:
        found.append(
            finding(
                "POSTURE-NO-POD-WEBHOOK",
                "Kyverno has no webhook for pods registered: it registers one only for "
                "policies that match pods, so no pod is sent to Kyverno now",
                "info",
                "apply the image-verification policy (a ClusterPolicy with verifyImages or an "
                "ImageValidatingPolicy matching Pod) and check that Kyverno reports it Ready",
                DOCS_VERIFY_IMAGES,
                "Kyverno's webhook configurations: "
                + listing([webhooks.name_of(c) for c in state.kyverno_configs] or ["none"]),
            )
        )
    ignoring = [(c, w) for c, w in pod_hooks if (w.get("failurePolicy") or "Fail") == "Ignore"]
    if ignoring:
        names = [f"{w.get('name')} ({webhooks.name_of(c)})" for c, w in ignoring]
        timeouts = sorted({int(w.get("timeoutSeconds") or 10) for _, w in ignoring})
        found.append(
            finding(
                "POSTURE-FAILOPEN",
                f"Kyverno's pod webhook{'s' if len(names) > 1 else ''} {listing(names)} "
                f"fail{'' if len(names) > 1 else 's'} open (failurePolicy Ignore): a pod is "
                f"admitted unverified whenever Kyverno does not answer within "
                f"{'/'.join(map(str, timeouts))} s, and (Kyverno's documented behaviour for "
                "Ignore) when the registry cannot be reached",
                "medium",
                "set `failurePolicy: Fail` (spec.webhookConfiguration.failurePolicy) on every "
                "policy that verifies images: Kyverno registers a `-ignore` webhook only for "
                "policies with failurePolicy Ignore; keep Kyverno highly available (replicas, "
                "PodDisruptionBudget) so Fail does not block the cluster",
                DOCS_POLICY_SETTINGS,
                "; ".join(
                    f"{webhooks.name_of(c)}/{w.get('name')}: failurePolicy Ignore, timeout "
                    f"{w.get('timeoutSeconds')}s, calls {webhooks.client_of(w)}"
                    for c, w in ignoring
                ),
            )
        )
    if state.flags is not None and state.flags.get_bool("forceFailurePolicyIgnore"):
        src = state.flags.source["forceFailurePolicyIgnore"]
        found.append(
            finding(
                "POSTURE-FORCE-FAILURE-POLICY-IGNORE",
                "Kyverno runs with forceFailurePolicyIgnore: every policy's webhook fails open, "
                "whatever the policy says",
                "medium",
                "remove --forceFailurePolicyIgnore (Helm: features.forceFailurePolicyIgnore."
                "enabled=false) and FLAG_FORCE_FAILURE_POLICY_IGNORE from Kyverno's admission "
                "controller",
                DOCS_CONFIG,
                f"{state.runs}: forceFailurePolicyIgnore="
                f"{state.flags.values['forceFailurePolicyIgnore']} (from {src})",
            )
        )
    return found


# -- 4. the verification cache ------------------------------------------------------------


def _cache_advisory_applies(state: ClusterState) -> bool | None:
    return advisories.in_range(state.version, CACHE_ADVISORY) if state.version else None


def verify_cache(state: ClusterState) -> list[Finding]:
    if state.flags is None or not state.flags.get_bool("imageVerifyCacheEnabled"):
        return []
    ttl = state.flags.values["imageVerifyCacheTTLDuration"]
    ttl = "60m" if ttl in ("0", "0s") else ttl
    applies = _cache_advisory_applies(state)
    gap = (
        f" and Kyverno {state.version} keys it by tag ({CACHE_ADVISORY.id})"
        if applies
        else f" (Kyverno's version unknown: {CACHE_ADVISORY.id} may apply)"
        if applies is None
        else ""
    )
    return [
        finding(
            "POSTURE-VERIFY-CACHE",
            f"Kyverno caches image verification results for up to {ttl}{gap}: what was "
            "verified once is not checked again until the entry expires",
            "medium",
            "set `useCache: false` on every verifyImages rule, or start Kyverno with "
            "--imageVerifyCacheEnabled=false (Helm: admissionController.container.extraArgs."
            f"imageVerifyCacheEnabled=false); {CACHE_ADVISORY.remediation}",
            CACHE_ADVISORY.url,
            "; ".join(
                f"{name}={state.flags.values[name]} (from {state.flags.source[name]})"
                for name in ("imageVerifyCacheEnabled", "imageVerifyCacheTTLDuration")
            ),
        )
    ]


# -- 5. advisories ------------------------------------------------------------------------


def known_advisories(state: ClusterState) -> list[Finding]:
    hits = advisories.affecting(state.version) if state.version else None
    if hits is None:
        why = (
            f"its version '{state.version}' ({state.version_source}) is no release version"
            if state.version
            else f"its version is not readable from the cluster (where Kyverno runs: {state.runs})"
        )
        return [
            finding(
                "POSTURE-VERSION-UNKNOWN",
                f"cannot tell which of {len(advisories.ADVISORIES)} known image-verification "
                f"advisories apply to this Kyverno: {why}",
                "info",
                "compare Kyverno's version with the advisories listed in the evidence",
                "https://github.com/kyverno/kyverno/security/advisories",
                "; ".join(f"{a.id} ({a.range})" for a in advisories.ADVISORIES),
            )
        ]
    found = []
    cache_off = state.flags is not None and state.flags.get_bool("imageVerifyCacheEnabled") is False
    for adv in hits:
        mitigated = adv is CACHE_ADVISORY and cache_off
        found.append(
            finding(
                f"POSTURE-ADVISORY-{adv.id}",
                f"Kyverno {state.version} is in the range of {adv.id} ({adv.range}): {adv.title}"
                + (" (mitigated here: --imageVerifyCacheEnabled=false)" if mitigated else ""),
                "info" if mitigated else adv.severity,
                adv.remediation,
                adv.url,
                f"version {state.version} from {state.version_source}; "
                f"{', '.join(adv.aliases)}; sources: {', '.join(adv.evidence)}",
            )
        )
    return found


# -- 6. other admission on pods -----------------------------------------------------------


def other_admission(state: ClusterState) -> list[Finding]:
    hooks = webhooks.pod_webhooks(state.other_configs)
    vaps = ClusterState.other_policy_facts(state.vaps, state.vap_bindings)
    maps = ClusterState.other_policy_facts(state.maps, state.map_bindings)
    if not (hooks or vaps or maps):
        return []
    named = [
        f"{c['kind']} {webhooks.name_of(c)} (webhook {w.get('name')}, "
        f"failurePolicy {w.get('failurePolicy') or 'Fail'})"
        for c, w in hooks
    ]
    named += [
        f"ValidatingAdmissionPolicy {p['name']} ({'bound' if p['in_effect'] else 'no binding'})"
        for p in vaps
    ]
    named += [
        f"MutatingAdmissionPolicy {p['name']} ({'bound' if p['in_effect'] else 'no binding'})"
        for p in maps
    ]
    mutating = maps or any(c["kind"] == "MutatingWebhookConfiguration" for c, _ in hooks)
    return [
        finding(
            "POSTURE-OTHER-ADMISSION",
            "other admission control acts on pods besides Kyverno: " + listing(named),
            "low" if mutating else "info",
            "check that nothing changes a pod's images after Kyverno verified them (a mutating "
            "webhook or policy that runs later) and that none of these denials is mistaken "
            "for Kyverno's",
            DOCS_ADMISSION,
            "; ".join(named),
        )
    ]


# -- what could not be read ---------------------------------------------------------------


def unreadable(state: ClusterState) -> list[Finding]:
    if not state.unreadable:
        return []
    items = [f"{what}: {why}" for what, why in sorted(state.unreadable.items())]
    return [
        finding(
            "POSTURE-UNREADABLE",
            f"the posture checks could not read {listing(sorted(state.unreadable))}: what depends "
            "on them was not judged",
            "info",
            "run with an identity that may get/list webhook configurations, admission policies "
            f"and namespaces, and Deployments and ConfigMaps in {state.kyverno_namespace}",
            "https://kubernetes.io/docs/reference/access-authn-authz/rbac/",
            "; ".join(items),
        )
    ]


CHECKS: tuple[Callable[[ClusterState], list[Finding]], ...] = (
    failopen,
    unseen_namespaces,
    match_conditions,
    excluded_requesters,
    verify_cache,
    known_advisories,
    other_admission,
    unreadable,
)


def check(
    cluster: Cluster,
    kyverno_namespace: str,
    *,
    run_namespaces_label: str | None = None,
    kyverno_version: str | None = None,
) -> tuple[list[Finding], dict[str, Any]]:
    """The posture findings for this cluster and the facts they rest on.

    `run_namespaces_label` (`key` or `key=value`): namespaces carrying it are the run's own,
    made and removed by the run; they are left out of the namespace checks. `kyverno_version`:
    what the caller knows of Kyverno's version (the local target built it), used only when
    the cluster shows none (Kyverno out of cluster has no Deployment or pod to read it from).
    """
    try:
        state = read(
            cluster,
            kyverno_namespace,
            run_namespaces_label=run_namespaces_label,
            kyverno_version=kyverno_version,
        )
    except Exception as err:
        # Reads report their own failures; anything else is a bug, and still no exception.
        return [_check_error("read", err)], {"error": f"{type(err).__name__}: {err}"}
    findings: list[Finding] = []
    for run_check in CHECKS:
        try:
            findings += run_check(state)
        except Exception as err:
            # A bug in one check must not cost the run its report: say which check and why.
            findings.append(_check_error(run_check.__name__, err))
    try:
        facts = state.facts()
    except Exception as err:
        findings.append(_check_error("facts", err))
        facts = {"error": f"{type(err).__name__}: {err}"}
    order = {"high": 0, "medium": 1, "low": 2, "info": 3}
    findings.sort(key=lambda f: order[f.severity])
    return findings, facts


def _check_error(step: str, err: Exception) -> Finding:
    return finding(
        "POSTURE-CHECK-ERROR",
        f"posture check {step} failed: {type(err).__name__}: {err}",
        "info",
        "report this as a bug in signcheck, with the evidence",
        "",
        repr(err),
    )

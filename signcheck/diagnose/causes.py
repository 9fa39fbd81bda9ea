"""From what the canary saw and what the cluster holds to one line: the cause and what to
change. Rules are tried in order and each fires only on something observed (an answer's
text, a field of a live object); when none does, the line says that no cause was found and
lists what was checked, rather than guessing.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from signcheck.clients.admission import Admission, Admitted, Denied, normalise
from signcheck.diagnose import selectors
from signcheck.diagnose.inspect import Inspection, ready

_VAP = re.compile(
    r"ValidatingAdmissionPolicy '(?P<policy>[^']+)' with binding '(?P<binding>[^']+)' "
    r"denied request(?::\s*(?P<message>.*))?"
)
_WEBHOOK_DENIED = re.compile(r'admission webhook "(?P<webhook>[^"]+)" denied the request')
_UNREACHABLE = re.compile(
    r'failed calling webhook "(?P<webhook>[^"]+)":?\s*(?P<why>.*)', flags=re.DOTALL
)


@dataclass
class Observation:
    """What the canary saw."""

    namespace: str
    pod_labels: dict[str, str]
    namespace_error: str = ""
    signed: Admission | None = None
    signed_problem: str = ""
    unsigned: Admission | None = None
    unsigned_problem: str = ""
    signer_key: str = ""
    """The PEM public key of the key that signed the canary's signed image."""

    @property
    def unsigned_admitted(self) -> bool:
        return isinstance(self.unsigned, Admitted)


@dataclass
class Diagnosis:
    cause: str
    remediation: str
    kind: Literal["fail", "environment"]
    """`fail`: the cluster's configuration lets an unsigned image in (the promise is broken);
    `environment`: the run could not judge (Kyverno unreachable, another admission policy
    refusing the run's pods, the run's own policy changed under it)."""
    checked: list[str] = field(default_factory=list)
    inspection: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        return f"{self.cause}; fix: {self.remediation}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _texts(obs: Observation) -> list[str]:
    out = [obs.namespace_error]
    out += [a.message for a in (obs.signed, obs.unsigned) if isinstance(a, Denied)]
    return [normalise(t) for t in out if t]


def _is_kyverno(webhook: str, found: Inspection) -> bool:
    names = {w.get("name") for c in found.kyverno_webhooks for w in c.get("webhooks") or []}
    return webhook in names or webhook.endswith(".kyverno.svc") or ".kyverno.svc-" in webhook


def _answers(obs: Observation, found: Inspection, kns: str) -> Diagnosis | None:
    """Causes the admission answers name themselves."""
    for text in _texts(obs):
        if m := _UNREACHABLE.search(text):
            why = m.group("why").strip()[:240]
            if "x509" in why or "certificate" in why:
                return Diagnosis(
                    f"the API server does not trust the serving certificate of Kyverno's "
                    f"webhook {m.group('webhook')} ({why})",
                    f"make the webhook configuration's caBundle match Kyverno's serving "
                    f"certificate (Kyverno's TLS secrets in namespace {kns}; restarting its "
                    "admission controller re-registers both)",
                    "environment",
                )
            return Diagnosis(
                f"Kyverno's webhook {m.group('webhook')} cannot be called ({why})",
                f"bring Kyverno's admission controller back (its pods/endpoints in namespace "
                f"{kns}, `kubectl -n {kns} get pods,endpoints`); its webhooks are fail-closed, "
                "so every pod in their scope is refused until it answers",
                "environment",
            )
        if m := _VAP.search(text):
            return Diagnosis(
                f"pods in the run's namespaces are refused by ValidatingAdmissionPolicy "
                f"{m.group('policy')} (binding {m.group('binding')}) before Kyverno's verdict: "
                f"{(m.group('message') or '').strip()[:200]}",
                f"exclude the run's namespaces (label signcheck.io/run) from binding "
                f"{m.group('binding')}'s matchResources, or run where it does not apply",
                "environment",
            )
        if (m := _WEBHOOK_DENIED.search(text)) and not _is_kyverno(m.group("webhook"), found):
            return Diagnosis(
                f"pods in the run's namespaces are refused by the admission webhook "
                f"{m.group('webhook')}, which is not Kyverno's: {text[m.end() :].strip()[:200]}",
                f"exclude the run's namespaces (label signcheck.io/run) from webhook "
                f"{m.group('webhook')} (its namespaceSelector), or run where it does not apply",
                "environment",
            )
    if isinstance(obs.signed, Denied) and obs.signed.registry_error:
        return Diagnosis(
            f"Kyverno cannot read the registry to verify the run's signed image: "
            f"{obs.signed.reason}",
            "give Kyverno working credentials for the registry (its --imagePullSecrets "
            f"secret in namespace {kns}, e.g. regcred) and make sure it reaches and trusts it",
            "environment",
        )
    return None


def _policy(found: Inspection, name: str | None) -> Diagnosis | None:
    if not name or not found.policy_read:
        return None
    if found.policy is None:
        return Diagnosis(
            f"the run's ClusterPolicy {name} is not in the cluster (deleted after it was applied?)",
            "find what removes ClusterPolicies (a GitOps sync pruning unknown objects?) and "
            "exempt the run's policies (label signcheck.io/run)",
            "environment",
        )
    is_ready, message = ready(found.policy)
    if is_ready is False:
        return Diagnosis(
            f"the run's ClusterPolicy {name} is not Ready: {message}",
            "fix what its status names (Kyverno's policy controller log says more)",
            "environment",
        )
    spec = found.policy.get("spec", {})
    actions = {str(spec.get("validationFailureAction") or "").lower()}
    actions |= {
        str(iv.get("failureAction") or "").lower()
        for rule in spec.get("rules") or []
        for iv in rule.get("verifyImages") or []
    }
    if "audit" in actions:
        return Diagnosis(
            f"the run's ClusterPolicy {name} is in Audit on the cluster (it only reports): "
            f"validationFailureAction={spec.get('validationFailureAction')}",
            "find what changed it to Audit and set Enforce",
            "environment",
        )
    return None


def _signed_refused(obs: Observation, found: Inspection, name: str | None) -> Diagnosis | None:
    """The run's own signed image refused as a signature verdict."""
    if not isinstance(obs.signed, Denied) or obs.signed.verdict != "signature":
        return None
    reason = obs.signed.reason or normalise(obs.signed.message)[:200]
    if found.policy is not None and obs.signer_key:
        held = "".join(json.dumps(found.policy).replace("\\n", "").split())
        key = "".join(obs.signer_key.replace("\n", "").split())
        if key not in held:
            return Diagnosis(
                f"the live ClusterPolicy {name} does not hold the key that signed the run's "
                f"image, so the signed canary is refused ({reason})",
                "find what changed the policy's attestors after the run applied it",
                "environment",
            )
    return Diagnosis(
        f"the run's policy {name} refuses the run's own signed image: {reason}",
        "check that Kyverno verifies against the registry the image is in (signature "
        "repository, credentials) and the policy's attestors",
        "environment",
    )


def _kyverno_blind(obs: Observation, found: Inspection, kns: str) -> Diagnosis | None:
    """Kyverno never saw the unsigned pod: its webhooks, filters or exclusions skip it."""
    if "webhook configurations" not in found.unreadable:
        pods_hooks = [
            (c["metadata"]["name"], w)
            for c in found.kyverno_webhooks
            if c.get("kind") == "MutatingWebhookConfiguration"
            for w in c.get("webhooks") or []
            if any("pods" in (r.get("resources") or []) for r in w.get("rules") or [])
        ]
        if not pods_hooks:
            return Diagnosis(
                "Kyverno has no mutating webhook for pods registered (its image "
                "verification never runs)",
                f"check Kyverno's admission controller in namespace {kns} (it registers the "
                "webhooks for the policies it has loaded) and its ClusterRole",
                "fail",
            )
        labels = found.namespace_labels or {}
        sel = [(n, w) for n, w in pods_hooks if not selectors.matches(_sel(w, "namespace"), labels)]
        if found.namespace_labels is not None and len(sel) == len(pods_hooks):
            name, hook = sel[0]
            return Diagnosis(
                f"Kyverno's webhooks never see namespace {obs.namespace}: the namespaceSelector "
                f"{json.dumps(_sel(hook, 'namespace'))} of {name} excludes it",
                f"remove that exclusion from the `webhooks` key of ConfigMap {kns}/kyverno "
                "(Kyverno writes its webhooks' namespaceSelector from it)",
                "fail",
            )
        obj = [
            (n, w)
            for n, w in pods_hooks
            if not selectors.matches(_sel(w, "object"), obs.pod_labels)
        ]
        if len(obj) == len(pods_hooks):
            name, hook = obj[0]
            return Diagnosis(
                f"Kyverno's webhooks never see the run's pods: the objectSelector "
                f"{json.dumps(_sel(hook, 'object'))} of {name} excludes their labels",
                f"remove that objectSelector from the `webhooks` key of ConfigMap {kns}/kyverno",
                "fail",
            )
    data = found.configmap or {}
    for entry in selectors.resource_filters(data.get("resourceFilters", "")):
        if selectors.filter_hits_pod(entry, obs.namespace, "signcheck-canary-unsigned"):
            return Diagnosis(
                f"Kyverno ignores pods in namespace {obs.namespace}: resourceFilters entry "
                f"{entry} in ConfigMap {kns}/kyverno",
                f"remove {entry} from resourceFilters in ConfigMap {kns}/kyverno",
                "fail",
            )
    if found.user or found.groups:
        hits = selectors.requester_excluded(data, found.user, found.groups)
        if hits:
            return Diagnosis(
                f"Kyverno skips every request from this run's identity ({found.user}): "
                f"{hits[0]} in ConfigMap {kns}/kyverno",
                f"remove that entry from ConfigMap {kns}/kyverno, or run as an identity it "
                "does not exclude",
                "fail",
            )
    return None


def _sel(webhook: dict[str, Any], which: str) -> dict[str, Any] | None:
    snake, camel = f"{which}_selector", f"{which}Selector"
    value = webhook.get(snake) or webhook.get(camel)
    return _camel(value) if value else None


def _camel(selector: dict[str, Any]) -> dict[str, Any]:
    """The python client's snake_case selector in the API's own spelling."""
    out: dict[str, Any] = {}
    if labels := selector.get("match_labels") or selector.get("matchLabels"):
        out["matchLabels"] = labels
    if exprs := selector.get("match_expressions") or selector.get("matchExpressions"):
        out["matchExpressions"] = [{k: v for k, v in e.items() if v is not None} for e in exprs]
    return out


def _exceptions(found: Inspection, name: str | None) -> Diagnosis | None:
    for exc in found.exceptions:
        for entry in exc.get("spec", {}).get("exceptions") or []:
            if name and selectors.wildcard(str(entry.get("policyName", "")), name):
                where = f"{exc['metadata'].get('namespace')}/{exc['metadata'].get('name')}"
                return Diagnosis(
                    f"PolicyException {where} exempts the run's policy {name} "
                    f"(rules {', '.join(entry.get('ruleNames') or [])})",
                    f"delete or narrow PolicyException {where}",
                    "fail",
                )
    return None


def diagnose(
    obs: Observation, found: Inspection, *, kyverno_namespace: str, policy_name: str | None
) -> Diagnosis:
    kns = kyverno_namespace
    checked = [
        "the admission answers (webhook reachability, other webhooks and admission policies, "
        "registry errors)",
        f"the live ClusterPolicy {policy_name}",
        "Kyverno's webhook configurations (namespace and object selectors)",
        f"ConfigMap {kns}/kyverno (resourceFilters, excludeGroups, excludeUsernames)",
        "PolicyExceptions",
    ]
    result = _answers(obs, found, kns) or _policy(found, policy_name)
    result = result or _signed_refused(obs, found, policy_name)
    if result is None and (obs.unsigned_admitted or isinstance(obs.signed, Admitted)):
        result = _kyverno_blind(obs, found, kns) or _exceptions(found, policy_name)
    if result is None:
        seen = "; ".join(p for p in (obs.signed_problem, obs.unsigned_problem) if p)
        what = seen or obs.namespace_error or "the canary failed"
        result = Diagnosis(
            f"{what.splitlines()[0][:300]} (no cause found in: {'; '.join(checked)})",
            "see the inspection in the report (summary.json `diagnosis`) and Kyverno's log",
            "fail" if obs.unsigned_admitted else "environment",
        )
    if found.unreadable:
        unread = ", ".join(f"{k} ({v})" for k, v in found.unreadable.items())
        checked.append(f"not readable: {unread}")
    result.checked = checked
    result.inspection = found.as_dict()
    return result

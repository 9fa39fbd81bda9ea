"""BG-01: a signature removed after admission, under policies with background scanning on.

Kyverno's reports controller scans existing resources again every `--backgroundScanInterval`
(`cmd/reports-controller`, default 1h; `signcheck.localenv` sets it short) and writes each
scan as an EphemeralReport (`audit.kyverno.io/source: background-scan`), which it merges
into the resource's PolicyReport after a fixed 10 s delay (`pkg/controllers/report/
aggregate`), the newer result winning. A new pod is first scanned 30 s after it appears,
or at once when any policy or exception changes (`pkg/controllers/report/background`).

`start` (while the run signs) applies the scenario's two policies and admits two signed pods
under each; the run's other policies are applied next, which makes the reports controller
scan them at once. `revoke` (the end of the session setup) waits until a background scan
passed every pod, then deletes one image's signature from the registry: the next scan
happens while the other tests run, and BG-01 (`late`) reads the PolicyReports.
"""

from __future__ import annotations

import copy
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from signcheck.clients import k8s, oci
from signcheck.clients.admission import Admitted
from signcheck.clients.k8s import Cluster
from signcheck.diagnose.kyvernoconf import parse_flags
from signcheck.errors import SigncheckError
from signcheck.kyverno import cpol
from signcheck.localenv.services.kyverno import BACKGROUND_SCAN_INTERVAL
from signcheck.report.summary import admission_record
from signcheck.run.context import RunContext
from signcheck.wait import until

Api = Literal["cpol", "ivpol"]
VARIANTS: dict[str, tuple[Api, str, dict[str, Any]]] = {
    "bg": (
        "cpol",
        "`background: true`; a second rule, the same with `useCache: false`",
        {"background": True},
    ),
    "bg-ivpol": ("ivpol", "the ImageValidatingPolicy twin, background on", {"background": True}),
}
"""Policy variants: name -> (API, what differs from the seed's, renderer overrides)."""
NOCACHE_RULE = "check-image-nocache"
CASES: dict[str, tuple[str, str | None]] = {
    "cpol": ("bg", "check-image"),
    "nocache": ("bg", NOCACHE_RULE),
    "ivpol": ("bg-ivpol", None),
}
"""BG-01's cases -> the variant and the rule (None: an ImageValidatingPolicy has none).
`nocache` is a rule of the `bg` policy rather than a policy of its own: the reports
controller scans every resource of the cluster against each background policy at every
interval, and a rule costs it less than a policy."""
REVOKED = "bg-revoked"
"""The image whose signature is removed (signed with the run's key first)."""
ROLES = ("kept", "revoked")
SOURCE_LABEL = "audit.kyverno.io/source"
FIRST_SCAN = 45.0
"""How long `revoke` waits for the first background scan: the reports controller's own
delay for a new resource is 30 s, when no policy change triggered one earlier."""
AGGREGATION = 10.0
"""The reports controller's fixed delay before it merges a changed EphemeralReport."""


def add_nocache_rule(policy: dict[str, Any]) -> None:
    """Give a ClusterPolicy (in place) a copy of its rule with `useCache: false`."""
    rules = policy["spec"]["rules"]
    if any(r["name"] == NOCACHE_RULE for r in rules):
        return
    twin = copy.deepcopy(rules[0])
    twin["name"] = NOCACHE_RULE
    for verify in twin["verifyImages"]:
        verify["useCache"] = False
    rules.append(twin)


def start(
    res: RunContext, docs: dict[str, dict[str, Any]], images: dict[str, oci.PushedImage]
) -> dict[str, Any]:
    """Apply the variants `docs` (variant -> policy; `bg` gets its second rule here), and
    under each admit a pod of the image whose signature stays (`kept`) and of the one that
    loses it (`revoked`)."""
    if "bg" in docs:
        add_nocache_rule(docs["bg"])
    cluster, run_id = res.cluster, res.target.run_id
    record: dict[str, Any] = {
        "namespaces": {},
        "policies": {v: doc["metadata"]["name"] for v, doc in docs.items()},
        "pods": {},
        "errors": {},
        "interval": scan_interval(res),
    }
    try:
        cpol.apply_all(cluster, docs.values(), res.settings.timeouts.policy_ready)
    except SigncheckError as err:
        # An ImageValidatingPolicy with background on is Ready only when the reports
        # controller's service account may read pods: say so in BG-01, not for every test.
        record["errors"] = {v: err.message for v in docs}
        return record

    def admit(variant: str) -> None:
        ns = res.namespace_name(variant)
        cluster.create_namespace(ns, run_id, labels={cpol.VARIANT_LABEL: variant})
        cpol.wait_namespace_seen(cluster, ns, run_id, res.settings.timeouts.policy_ready)
        record["namespaces"][variant] = ns
        record["pods"][variant] = {}
        for role in ROLES:
            image = images[role].by_tag
            result = cluster.create(k8s.pod(role, ns, image, run_id), image=image)
            record["pods"][variant][role] = admission_record(
                f"create Pod {ns}/{role}", image, result
            )
            if not isinstance(result, Admitted):
                record["errors"][variant] = f"the signed pod {role} was refused: {result}"

    with ThreadPoolExecutor(max_workers=len(docs) or 1) as pool:
        list(pool.map(admit, docs))
    return record


def revoke(res: RunContext, record: dict[str, Any], image: oci.PushedImage) -> dict[str, Any]:
    """Once a background scan passed every pod under every rule, delete `image`'s signature;
    records the scans it waited for (`before`) and when the signature went (`revoked_at`)."""
    waiting = {v: ns for v, ns in record["namespaces"].items() if v not in record["errors"]}
    rules = {v: [r for c, (cv, r) in CASES.items() if cv == v] for v in waiting}
    seen: dict[str, dict[str, Any]] = {}

    def probe() -> bool:
        for variant, ns in waiting.items():
            scans = background_results(res.cluster, ns, record["policies"][variant])
            wanted = [_key(role, rule) for role in ROLES for rule in rules[variant]]
            if all(scans.get(k, {}).get("result") == "pass" for k in wanted):
                seen[variant] = {k: scans[k] for k in wanted}
        return len(seen) == len(waiting)

    try:
        until(probe, what="a background scan of BG-01's pods", timeout=FIRST_SCAN, interval=0.5)
    except SigncheckError as err:
        for variant in waiting.keys() - seen.keys():
            record["errors"][variant] = (
                f"no background scan passed both pods of namespace {waiting[variant]} within "
                f"{FIRST_SCAN:g}s (is the reports controller running, with background scans "
                f"on?): {err.message}"
            )
    record["before"] = seen
    if seen:
        res.registry.delete(image.repository, image.signature_tag)
        record["revoked_at"] = time.time()
    return record


def _key(pod: str, rule: str | None) -> str:
    # An ImageValidatingPolicy's result names the policy as its rule.
    return f"{pod}/{rule or '*'}"


def background_results(cluster: Cluster, namespace: str, policy: str) -> dict[str, Any]:
    """`<pod>/<rule>` (`<pod>/*` for an ImageValidatingPolicy) -> the result of `policy` in
    the pod's background-scan EphemeralReport."""
    reports = cluster.list_objects(
        "reports.kyverno.io",
        "v1",
        "ephemeralreports",
        namespace=namespace,
        label_selector=f"{SOURCE_LABEL}=background-scan",
    )
    out: dict[str, Any] = {}
    for report in reports:
        owner = (report["metadata"].get("ownerReferences") or [{}])[0].get("name")
        for result in (report.get("spec") or {}).get("results") or []:
            if owner and result.get("policy") == policy:
                rule = result.get("rule")
                out[_key(owner, None if rule == policy else rule)] = _result(result)
    return out


def report_results(
    cluster: Cluster, namespace: str, policy: str, rule: str | None
) -> dict[str, Any]:
    """Pod name -> the result of `policy` (its `rule`, unless None) in the pod's PolicyReport
    (what users read)."""
    reports = cluster.list_objects(
        "wgpolicyk8s.io", "v1alpha2", "policyreports", namespace=namespace
    )
    out: dict[str, Any] = {}
    for report in reports:
        scope = report.get("scope") or {}
        for result in report.get("results") or []:
            if scope.get("kind") != "Pod" or result.get("policy") != policy:
                continue
            if rule is None or result.get("rule") == rule:
                out[str(scope.get("name"))] = _result(result)
    return out


def _result(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "result": result.get("result"),
        "rule": result.get("rule"),
        "message": result.get("message", ""),
        "timestamp": int((result.get("timestamp") or {}).get("seconds") or 0),
    }


def wait_rescanned(
    cluster: Cluster,
    namespace: str,
    policy: str,
    rule: str | None,
    since: float,
    timeout: float,
) -> dict[str, Any]:
    """The PolicyReport results of both pods once each comes from a scan after `since` (an
    epoch; results carry whole seconds, so a scan in the same second does not count)."""
    last: dict[str, Any] = {}

    def probe() -> dict[str, Any] | None:
        nonlocal last
        last = report_results(cluster, namespace, policy, rule)
        fresh = all(last.get(r, {}).get("timestamp", 0) > int(since) for r in ROLES)
        return last if fresh else None

    return until(
        probe,
        what=f"a background scan of the pods in {namespace} after the signature went",
        timeout=timeout,
        interval=0.5,
        describe=lambda: str(last),
    )


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration(text: str) -> float | None:
    """Seconds in a Go duration (`5s`, `1h0m0s`); None when it is not one."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT[u] for n, u in parts)


def scan_interval(res: RunContext) -> float | None:
    """Seconds between background scans: the flag of the reports controller's Deployment
    (Kyverno's default 1h when unset); the local environment's own when Kyverno runs out of
    cluster; None when it cannot be told."""
    for dep in res.cluster.deployments(res.target.kyverno_namespace):
        for container in dep["spec"]["template"]["spec"].get("containers") or []:
            argv = [str(a) for a in container.get("args") or []]
            if "reports-controller" in str(container.get("image")):
                return go_duration(parse_flags(argv).get("backgroundScanInterval", "1h"))
    if res.target.disposable:
        return go_duration(BACKGROUND_SCAN_INTERVAL)
    return None

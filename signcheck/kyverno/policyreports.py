"""The PolicyReports Kyverno writes (what Policy Reporter shows, the seed's optional step):
the results of one run's policy for the resources of one namespace.

Kyverno's reports-controller aggregates admission results into `wgpolicyk8s.io/v1alpha2`
PolicyReports some seconds after the request, so reading them is a wait.
"""

from __future__ import annotations

from dataclasses import dataclass

from signcheck.clients.k8s import Cluster
from signcheck.clients.k8sapi import ApiError
from signcheck.errors import EnvironmentNotReady
from signcheck.wait import until

GROUP, VERSION, PLURAL = "wgpolicyk8s.io", "v1alpha2", "policyreports"


@dataclass(frozen=True)
class ReportResult:
    policy: str
    rule: str
    result: str
    """pass, fail, warn, error or skip."""
    resources: tuple[str, ...]
    """`Kind/name` of each resource the result is about."""
    message: str = ""


def results(cluster: Cluster, namespace: str) -> list[ReportResult]:
    try:
        items = cluster.list_objects(GROUP, VERSION, PLURAL, namespace=namespace)
    except ApiError as err:
        if err.status == 404:
            raise EnvironmentNotReady(
                "the cluster has no PolicyReport API (wgpolicyk8s.io/v1alpha2): Kyverno's "
                "reports CRDs are not installed"
            ) from err
        raise
    out = []
    for report in items:
        scope = report.get("scope") or {}
        for res in report.get("results") or []:
            subjects = res.get("resources") or ([scope] if scope else [])
            out.append(
                ReportResult(
                    policy=str(res.get("policy", "")),
                    rule=str(res.get("rule", "")),
                    result=str(res.get("result", "")),
                    resources=tuple(f"{r.get('kind')}/{r.get('name')}" for r in subjects),
                    message=str(res.get("message", "")),
                )
            )
    return out


def wait_for_result(
    cluster: Cluster, namespace: str, policy: str, resource: str, timeout: float
) -> ReportResult:
    """The first result of `policy` about `resource` (`Pod/name`) in `namespace`."""
    seen: list[ReportResult] = []

    def probe() -> ReportResult | None:
        nonlocal seen
        seen = results(cluster, namespace)
        for r in seen:
            if r.policy == policy and resource in r.resources:
                return r
        return None

    return until(
        probe,
        what=f"a PolicyReport result of {policy} for {resource} in namespace {namespace}",
        timeout=timeout,
        interval=1.0,
        describe=lambda: str(seen) or "no PolicyReport results in the namespace",
    )

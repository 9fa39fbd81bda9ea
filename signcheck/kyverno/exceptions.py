"""PolicyExceptions for the EXC scenarios: where the cluster's Kyverno accepts them, and the
two kinds the suite writes (`kyverno.io/v2` for a ClusterPolicy, `policies.kyverno.io/v1`
for an ImageValidatingPolicy).

Kyverno 1.19 processes PolicyExceptions only with `--enablePolicyException=true`, and only
those in `--exceptionNamespace` (or anywhere with `*`): off by default. The local target
turns them on for a namespace of the run (`signcheck.localenv.services.kyverno`, the chart's
`features.policyExceptions` on a real node); on another cluster the admission controller's
Deployment says whether they are on, and where.

Neither kind can name an image of a ClusterPolicy's rule: a `kyverno.io/v2` exception exempts
a whole resource from a rule, so "an exception for image A" is a condition on the pod's
images (all of them under A's repository). A `policies.kyverno.io` exception carries
`spec.images`, which an ImageValidatingPolicy in 1.19.1 does not read (see EXC-02).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from signcheck.clients.admission import Admitted
from signcheck.clients.k8s import Cluster
from signcheck.diagnose.clusterstate import ADMISSION_COMPONENT
from signcheck.diagnose.kyvernoconf import go_bool, parse_flags
from signcheck.target import RUN_LABEL, Target
from signcheck.wait import until

CPOL_EXCEPTION = ("kyverno.io", "v2")
IVPOL_EXCEPTION = ("policies.kyverno.io", "v1")


@dataclass(frozen=True)
class ExceptionSettings:
    """Whether Kyverno processes PolicyExceptions, and the namespace it takes them from."""

    namespace: str | None
    """`--exceptionNamespace` (`*`: any); None when exceptions are off or not known."""
    why_not: str = ""
    """Why the scenarios cannot run, when `namespace` is None."""


def settings(cluster: Cluster, target: Target) -> ExceptionSettings:
    """Read from the local target's own record, else from Kyverno's Deployment."""
    known = (target.extra or {}).get("exception_namespace")
    if known:
        return ExceptionSettings(str(known))
    deployments = cluster.deployments(target.kyverno_namespace, ADMISSION_COMPONENT)
    containers = [
        c
        for d in deployments
        for c in (((d.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")
        or []
        if c.get("name") == "kyverno"
    ]
    if not containers:
        return ExceptionSettings(
            None,
            f"Kyverno's admission controller Deployment ({ADMISSION_COMPONENT}) is not in "
            f"namespace {target.kyverno_namespace} or cannot be read: whether it processes "
            "PolicyExceptions (--enablePolicyException) is not known",
        )
    argv = [str(a) for a in (containers[0].get("command") or [])[1:]]
    flags = parse_flags(argv + [str(a) for a in containers[0].get("args") or []])
    if go_bool(flags.get("enablePolicyException", "false")) is not True:
        return ExceptionSettings(
            None,
            "PolicyExceptions are disabled in this cluster's Kyverno (--enablePolicyException "
            "is not true, Kyverno 1.19's default): enable them with the chart's "
            "features.policyExceptions.enabled and .namespace to run these scenarios",
        )
    namespace = flags.get("exceptionNamespace", "")
    if not namespace:
        return ExceptionSettings(
            None,
            "--enablePolicyException is on but --exceptionNamespace is empty: Kyverno then "
            "processes no PolicyException at all",
        )
    return ExceptionSettings(namespace)


def cpol_exception(
    name: str,
    namespace: str,
    run_id: str,
    *,
    policy: str,
    rule: str,
    pods_in: str,
    all_images: str,
) -> dict[str, Any]:
    """A `kyverno.io/v2` exception from `policy`'s `rule` for the pods in `pods_in` whose
    every container image matches `all_images` (a wildcard): the narrowest exception for an
    image that this API can express."""
    return {
        "apiVersion": "/".join(CPOL_EXCEPTION),
        "kind": "PolicyException",
        "metadata": {"name": name, "namespace": namespace, "labels": {RUN_LABEL: run_id}},
        "spec": {
            "background": False,
            "exceptions": [{"policyName": policy, "ruleNames": [rule]}],
            "match": {"any": [{"resources": {"kinds": ["Pod"], "namespaces": [pods_in]}}]},
            "conditions": {
                "all": [
                    {
                        "key": "{{ request.object.spec.containers[].image }}",
                        "operator": "AllIn",
                        "value": [all_images],
                    }
                ]
            },
        },
    }


def ivpol_exception(
    name: str,
    namespace: str,
    run_id: str,
    *,
    policy: str,
    condition: str,
    images: list[str] | None = None,
) -> dict[str, Any]:
    """A `policies.kyverno.io/v1` exception from ImageValidatingPolicy `policy` for the
    requests `condition` (CEL) selects; `images` fills `spec.images`."""
    spec: dict[str, Any] = {
        "policyRefs": [{"name": policy, "kind": "ImageValidatingPolicy"}],
        "matchConditions": [{"name": "scenario", "expression": condition}],
    }
    if images:
        spec["images"] = list(images)
    return {
        "apiVersion": "/".join(IVPOL_EXCEPTION),
        "kind": "PolicyException",
        "metadata": {"name": name, "namespace": namespace, "labels": {RUN_LABEL: run_id}},
        "spec": spec,
    }


def create(cluster: Cluster, exception: dict[str, Any]) -> None:
    result = cluster.create(exception)
    meta = exception["metadata"]
    if not isinstance(result, Admitted):
        raise AssertionError(
            f"PolicyException {meta['namespace']}/{meta['name']} was refused: {result.message}"
        )


def delete(cluster: Cluster, exception: dict[str, Any]) -> None:
    cluster.delete(exception)


def wait_in_effect(cluster: Cluster, pod: dict[str, Any], what: str, timeout: float) -> None:
    """Wait until `pod` (one that only an exception admits) passes admission in a dry run:
    Kyverno reads exceptions from an informer, so a new one takes a moment to count."""
    last: list[str] = []

    def probe() -> bool:
        result = cluster.create(pod, dry_run=True)
        if isinstance(result, Admitted):
            return True
        last[:] = [result.message]
        return False

    until(
        probe,
        what=what,
        timeout=timeout,
        interval=0.05,
        backoff=1.5,
        max_interval=0.5,
        describe=lambda: last[0] if last else "nothing yet",
    )

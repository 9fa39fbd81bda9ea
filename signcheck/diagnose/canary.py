"""The canary: before any scenario, in a fresh namespace of the run, the seed's signed image
must be admitted *and verified* and an unsigned image denied by the run's policy. When it is
not, the run inspects the cluster and names the cause once, instead of running every
scenario into the same wall.

Both pods go through admission as server-side dry runs: Kyverno judges (and mutates) them
exactly as it would a real create, and nothing is left to delete.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from signcheck.clients import k8s
from signcheck.clients.admission import Admission
from signcheck.clients.k8s import Cluster
from signcheck.clients.oci import PushedImage
from signcheck.diagnose.causes import Diagnosis, Observation, diagnose
from signcheck.diagnose.inspect import inspect
from signcheck.errors import SigncheckError
from signcheck.kyverno import cpol
from signcheck.report.summary import admission_record
from signcheck.run.scenarios import PolicyRef
from signcheck.suite import expect
from signcheck.target import RUN_LABEL

SIGNED_POD = "signcheck-canary-signed"
UNSIGNED_POD = "signcheck-canary-unsigned"


@dataclass
class CanaryResult:
    ok: bool
    namespace: str
    admissions: list[dict[str, Any]]
    diagnosis: Diagnosis | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CanaryResult:
        d = data.get("diagnosis")
        return cls(
            bool(data["ok"]),
            str(data["namespace"]),
            list(data.get("admissions") or []),
            Diagnosis(**d) if d else None,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "namespace": self.namespace,
            "admissions": self.admissions,
            "diagnosis": self.diagnosis.as_dict() if self.diagnosis else None,
        }


def run(
    cluster: Cluster,
    *,
    namespace: str,
    run_id: str,
    signed: PushedImage,
    unsigned: PushedImage,
    policy: PolicyRef,
    kyverno_namespace: str,
    timeout: float,
    signer_key: str = "",
) -> CanaryResult:
    labels = {RUN_LABEL: run_id}
    obs = Observation(namespace, labels, signer_key=signer_key)
    admissions: list[dict[str, Any]] = []
    cluster.create_namespace(namespace, run_id)
    try:
        cpol.wait_namespace_seen(cluster, namespace, run_id, timeout)
    except SigncheckError as err:
        obs.namespace_error = str(err)
    else:
        obs.signed, obs.signed_problem = _try(
            cluster,
            k8s.pod(SIGNED_POD, namespace, signed.by_tag, run_id),
            signed.by_tag,
            lambda r: expect.verified(r, "the canary's signed pod", signed, policy.api),
        )
        obs.unsigned, obs.unsigned_problem = _try(
            cluster,
            k8s.pod(UNSIGNED_POD, namespace, unsigned.by_tag, run_id),
            unsigned.by_tag,
            lambda r: expect.denied_unsigned(
                r, "the canary's unsigned pod", policy, image=unsigned.by_tag
            ),
        )
        for name, image, result in (
            (SIGNED_POD, signed.by_tag, obs.signed),
            (UNSIGNED_POD, unsigned.by_tag, obs.unsigned),
        ):
            if result is not None:
                admissions.append(
                    admission_record(f"dry-run Pod {namespace}/{name}", image, result)
                )
    if not (obs.namespace_error or obs.signed_problem or obs.unsigned_problem):
        return CanaryResult(True, namespace, admissions)
    found = inspect(
        cluster, kyverno_namespace=kyverno_namespace, namespace=namespace, policy_name=policy.name
    )
    diagnosis = diagnose(obs, found, kyverno_namespace=kyverno_namespace, policy_name=policy.name)
    return CanaryResult(False, namespace, admissions, diagnosis)


def _try(
    cluster: Cluster, pod: dict[str, Any], image: str, check: Any
) -> tuple[Admission | None, str]:
    try:
        result = cluster.create(pod, image=image, dry_run=True)
    except Exception as err:  # an answer that is not an admission verdict: an observation
        return None, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    try:
        check(result)
    except (AssertionError, SigncheckError) as err:
        return result, str(err).splitlines()[0]
    return result, ""

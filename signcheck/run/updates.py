"""The session part of UPD-01 and UPD-02: Deployments made from an unsigned image *before*
a policy governed their namespace, then the namespace brought into the policy's scope.

One run cannot remove its policy to go back in time, so "before the policy existed" is a
namespace of the run that no policy selects yet (`signcheck.io/variant=ungoverned`), whose
label is then changed to the one the seed's policy (`cpol`) or its ImageValidatingPolicy twin
(`ivpol`) selects: from Kyverno's point of view the policy starts governing workloads that
were admitted without it, which is what applying a policy to a running cluster does.

`start` creates the namespaces and Deployments while the run is still signing (UPD-02's with
a history: revision 1 signed, revision 2 unsigned); `arm`, once the policies are Ready, waits
for their pods, relabels, and scales UPD-01's Deployments up, so the ReplicaSet controller
meets the policy while other tests run.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from signcheck.clients import k8s, oci, rollouts, workloads
from signcheck.clients.admission import Admission, Admitted, Denied
from signcheck.errors import SigncheckError
from signcheck.kyverno import cpol
from signcheck.kyverno.cpol import VARIANT_LABEL
from signcheck.run import scenarios
from signcheck.run.context import RunContext
from signcheck.wait import until

VERIFY_ANNOTATION = "kyverno.io/verify-images"
UNGOVERNED = "ungoverned"
"""A variant label no policy of the run selects."""
GOVERNED_BY = {"cpol": None, "ivpol": "ivpol"}
"""The variant label that brings a namespace under each API's policy (None: the seed's
policy, which selects the run's namespaces without a variant label)."""
BEFORE = {"unsigned": 1, "signed": 0}
"""Replicas of UPD-01's Deployments before the policy; each is scaled up by one after it
(the signed one, the control, had none before: its only pod is made under the policy)."""
SCALE, UNDO = "scale", "undo"


def _main_policy(res: RunContext) -> dict[str, Any] | None:
    return cpol.Policies(res.cluster).get(res.policy_name)


def _ivpol(res: RunContext) -> dict[str, Any] | None:
    name = scenarios.policy_name(res, "ivpol")
    return cpol.Policies(res.cluster, cpol.IMAGE_VALIDATING_POLICY).get(name)


GOVERNING = {"cpol": _main_policy, "ivpol": _ivpol}
"""The live policy each API's namespaces are brought under (None: the run applied none)."""


def start(
    res: RunContext, signed: oci.PushedImage, unsigned: oci.PushedImage, apis: list[str]
) -> dict[str, Any]:
    """The ungoverned namespaces and their Deployments; returns the JSON-safe record (per
    API: the namespace of each scenario)."""
    run_id = res.target.run_id
    cluster = res.cluster
    record: dict[str, Any] = {"namespaces": {}, "errors": {}}

    def one(api: str) -> None:
        try:
            made = {}
            for scenario in (SCALE, UNDO):
                ns = res.namespace_name(f"upd-{scenario}-{api}")
                cluster.create_namespace(ns, run_id, labels={VARIANT_LABEL: UNGOVERNED})
                made[scenario] = ns
            deployments = [
                (made[SCALE], "unsigned", unsigned.by_tag, BEFORE["unsigned"]),
                (made[SCALE], "signed", signed.by_tag, BEFORE["signed"]),
                # No replicas: a rollback is judged on the template, and pods would only
                # add a rollout per revision (WL-01 shows a Deployment's pods verified).
                (made[UNDO], "app", signed.by_digest, 0),
            ]
            for ns, name, image, replicas in deployments:
                manifest = workloads.manifest("Deployment", name, ns, image, run_id)
                manifest["spec"]["replicas"] = replicas
                _admitted(f"Deployment {ns}/{name}", cluster.create(manifest, image=image))
            # UPD-02's history: revision 1 signed, revision 2 (what runs) unsigned.
            rollouts.wait_revision(cluster, made[UNDO], "app", 1, res.settings.timeouts.pod_running)
            changed = rollouts.set_image(cluster, made[UNDO], "app", "app", unsigned.by_tag)
            _admitted(f"set image of Deployment {made[UNDO]}/app", changed)
            record["namespaces"][api] = made
        except SigncheckError as err:
            record["errors"][api] = err.message

    # Both APIs at once: each step waits on the API server's Deployment controller.
    with ThreadPoolExecutor(max_workers=len(apis) or 1) as pool:
        list(pool.map(one, apis))
    return record


def arm(res: RunContext, record: dict[str, Any], signed: oci.PushedImage) -> dict[str, Any]:
    """Bring the namespaces under their policies and scale UPD-01's Deployments up (both
    APIs at once: each step is a wait on the API server or Kyverno)."""

    def one(api: str) -> None:
        try:
            _arm(res, api, record["namespaces"][api], signed)
        except SigncheckError as err:
            record["errors"][api] = err.message

    apis = [api for api in record["namespaces"] if api not in record["errors"]]
    with ThreadPoolExecutor(max_workers=len(apis) or 1) as pool:
        list(pool.map(one, apis))
    return record


def _arm(res: RunContext, api: str, made: dict[str, str], signed: oci.PushedImage) -> None:
    cluster = res.cluster
    timeout = res.settings.timeouts.pod_running
    policy = GOVERNING[api](res)
    if policy is None:
        raise SigncheckError(f"no policy of the run governs {api}: it was not applied")
    # The pods of before: what the policy finds running when it arrives.
    rollouts.wait_replicas(cluster, made[SCALE], "unsigned", BEFORE["unsigned"], timeout)
    for ns in made.values():
        cluster.core.patch_namespace(
            ns, {"metadata": {"labels": {VARIANT_LABEL: GOVERNED_BY[api]}}}
        )
    # Only the scale needs Kyverno to know the new label now; UPD-02 runs much later.
    _wait_governed(res, made[SCALE], signed)
    for name, replicas in BEFORE.items():
        scaled = rollouts.scale(cluster, made[SCALE], name, replicas + 1)
        _admitted(f"scaling {made[SCALE]}/{name}", scaled)


def _admitted(what: str, result: Admission) -> None:
    if not isinstance(result, Admitted):
        raise SigncheckError(f"{what} was refused: {result}")


def _wait_governed(res: RunContext, namespace: str, signed: oci.PushedImage) -> None:
    """Until Kyverno judges the namespace by its new label: a dry-run pod of the signed image
    by tag comes back pinned or with Kyverno's verification record, or Kyverno refuses it
    (a policy that does not verify it: the canary then says why)."""
    pod = k8s.pod("signcheck-governed-probe", namespace, signed.by_tag, res.target.run_id)
    pinned = f"{signed.by_tag}@{signed.digest}"

    def probe() -> bool:
        result = res.cluster.create(pod, dry_run=True)
        if isinstance(result, Denied):
            return result.by_kyverno and result.policy is not None
        annotations = result.obj["metadata"].get("annotations") or {}
        image = result.obj["spec"]["containers"][0]["image"]
        return image == pinned or VERIFY_ANNOTATION in annotations

    until(
        probe,
        what=f"a policy to govern namespace {namespace} (a dry-run pod pinned to {pinned})",
        timeout=res.settings.timeouts.policy_ready,
        interval=0.02,
        backoff=2.0,
        max_interval=0.5,
    )

"""The session part of UPD-01 and UPD-02: Deployments made from an unsigned image *before*
a policy governed their namespace, then the namespace brought into the policy's scope.

One run cannot remove its policy to go back in time, so "before the policy existed" is a
namespace of the run that no policy selects yet (`signcheck.io/variant=ungoverned`), whose
label is then changed to the one the seed's policy (`cpol`) or its ImageValidatingPolicy twin
(`ivpol`) selects: from Kyverno's point of view the policy starts governing workloads that
were admitted without it, which is what applying a policy to a running cluster does.

`start` creates the namespaces and Deployments while the run is still signing (nothing waits
for them); `arm`, once the policies are Ready, waits for their pods, relabels, and scales
UPD-01's Deployments up, so the ReplicaSet controller meets the policy while other tests run.
"""

from __future__ import annotations

from typing import Any

from signcheck.clients import k8s, oci, rollouts, workloads
from signcheck.clients.admission import Admitted
from signcheck.errors import SigncheckError
from signcheck.kyverno.cpol import VARIANT_LABEL
from signcheck.run.context import RunContext
from signcheck.wait import until

UNGOVERNED = "ungoverned"
"""A variant label no policy of the run selects."""
GOVERNED_BY = {"cpol": None, "ivpol": "ivpol"}
"""The variant label that brings a namespace under each API's policy (None: the seed's
policy, which selects the run's namespaces without a variant label)."""
BEFORE = 2
"""Replicas of UPD-01's Deployments before the policy; scaled to `BEFORE + 1` after it."""
SCALE, UNDO = "scale", "undo"


def start(
    res: RunContext, signed: oci.PushedImage, unsigned: oci.PushedImage, apis: list[str]
) -> dict[str, Any]:
    """The ungoverned namespaces and their Deployments; returns the JSON-safe record (per
    API: the namespace of each scenario)."""
    run_id = res.target.run_id
    cluster = res.cluster
    record: dict[str, Any] = {"namespaces": {}, "errors": {}}
    for api in apis:
        try:
            made = {}
            for scenario in (SCALE, UNDO):
                ns = res.namespace_name(f"upd-{scenario}-{api}")
                cluster.create_namespace(ns, run_id, labels={VARIANT_LABEL: UNGOVERNED})
                made[scenario] = ns
            deployments = [
                (made[SCALE], "unsigned", unsigned.by_tag, BEFORE),
                (made[SCALE], "signed", signed.by_tag, BEFORE),
                (made[UNDO], "app", unsigned.by_tag, 1),
            ]
            for ns, name, image, replicas in deployments:
                manifest = workloads.manifest("Deployment", name, ns, image, run_id)
                manifest["spec"]["replicas"] = replicas
                created = cluster.create(manifest, image=image)
                if not isinstance(created, Admitted):
                    raise SigncheckError(f"Deployment {ns}/{name} was refused: {created}")
            record["namespaces"][api] = made
        except SigncheckError as err:
            record["errors"][api] = err.message
    return record


def arm(res: RunContext, record: dict[str, Any], signed: oci.PushedImage) -> dict[str, Any]:
    """Bring the namespaces under their policies and scale UPD-01's Deployments up."""
    cluster = res.cluster
    timeout = res.settings.timeouts.pod_running
    for api, made in record["namespaces"].items():
        if api in record["errors"]:
            continue
        try:
            # The pods of before: what the policy finds running when it arrives.
            for name in ("unsigned", "signed"):
                rollouts.wait_replicas(cluster, made[SCALE], name, BEFORE, timeout)
            rollouts.wait_revision(cluster, made[UNDO], "app", 1, timeout)
            for ns in made.values():
                cluster.core.patch_namespace(
                    ns, {"metadata": {"labels": {VARIANT_LABEL: GOVERNED_BY[api]}}}
                )
            for ns in made.values():
                _wait_governed(res, ns, signed)
            for name in ("unsigned", "signed"):
                scaled = rollouts.scale(cluster, made[SCALE], name, BEFORE + 1)
                if not isinstance(scaled, Admitted):
                    raise SigncheckError(f"scaling {made[SCALE]}/{name} was refused: {scaled}")
        except SigncheckError as err:
            record["errors"][api] = err.message
    return record


def _wait_governed(res: RunContext, namespace: str, signed: oci.PushedImage) -> None:
    """Until Kyverno judges the namespace by its new label: a dry-run pod of the signed image
    by tag comes back pinned to its digest (only a policy pins it)."""
    pod = k8s.pod("signcheck-governed-probe", namespace, signed.by_tag, res.target.run_id)
    pinned = f"{signed.by_tag}@{signed.digest}"

    def probe() -> bool:
        result = res.cluster.create(pod, dry_run=True)
        return isinstance(result, Admitted) and (
            result.obj["spec"]["containers"][0]["image"] == pinned
        )

    until(
        probe,
        what=f"a policy to govern namespace {namespace} (a dry-run pod pinned to {pinned})",
        timeout=res.settings.timeouts.policy_ready,
        interval=0.02,
        backoff=2.0,
        max_interval=0.5,
    )

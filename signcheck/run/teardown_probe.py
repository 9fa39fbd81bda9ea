"""SEED-08's miniature run: a run of its own (namespace, pod, policy, image) created and torn
down while the suite's session resources are made, so that its namespace deletion (at least
the namespace controller's fixed 5 s grace on every cluster) runs out behind the other tests
instead of in front of the test that checks it.

The probe records what existed before its teardown and what the teardown reported; the test
then asks the cluster and the registry what is left.
"""

from __future__ import annotations

from typing import Any

from signcheck.clients import k8s
from signcheck.kyverno import cpol
from signcheck.run import removal
from signcheck.run.context import RunContext
from signcheck.target import new_run_id


def start(res: RunContext, public_key_pem: str) -> dict[str, Any]:
    """Create the miniature run and tear it down at once; returns its JSON-safe record."""
    mini = res.for_run("td-" + new_run_id())
    run_id = mini.target.run_id
    errors: list[str] = []
    before: dict[str, list[str]] = {}
    try:
        pushed = mini.registry.push_image(mini.repository("signed"), run_id)
        ns = mini.namespace_name("teardown")
        mini.cluster.create_namespace(ns, run_id)
        # Outside every policy of the main run (its own run id), so admitted as it is.
        created = mini.cluster.create(k8s.pod("p", ns, pushed.by_tag, run_id))
        if not created.admitted:
            errors.append(f"the miniature run's pod was not admitted: {created}")
        # Audit and no digest mutation: the probe's policy must never decide a test's pod.
        policy = cpol.run_policy(
            mini.target,
            (public_key_pem,),
            name=f"check-image-{run_id}",
            seed_exact=res.settings.seed_exact_policy,
            action="Audit",
            mutate_digest=False,
        )
        cpol.Policies(mini.cluster).apply(policy)
        before = removal.leftovers(mini)
    finally:
        # Whatever got made goes, also when making the rest failed.
        errors += removal.remove(mini).errors
    return {"run_id": run_id, "before": before, "errors": errors}

"""SEED-08: "Delete the resources you created": the run's teardown leaves nothing behind.

The session's own teardown happens after the last test (and the summary records what, if
anything, it left: `teardown.leftovers`, failing the run). This test proves the same
teardown on a miniature run of its own, while the suite can still observe it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from signcheck import k8s, kyverno
from signcheck.k8s import Cluster
from signcheck.pytest_plugin import SigncheckRun
from signcheck.run import RunResources, State, namespace_name
from signcheck.shared import Phases
from signcheck.target import Target, new_run_id


@pytest.mark.scenario(
    "SEED-08",
    step="Delete the resources you created: nothing is left",
    expect="a miniature run's namespaces, policies and images all gone after its teardown",
)
def test_teardown_removes_everything(
    target: Target, cluster: Cluster, signcheck_run: SigncheckRun, run_state: State
) -> None:
    """What a run creates (namespaces, policies, images), its teardown removes."""
    mini = replace(target, run_id="td-" + new_run_id())
    res = RunResources(mini, signcheck_run.settings, Phases(mini.run_dir))
    pushed = res.registry.push_image(res.repository("signed"), mini.run_id)
    ns = namespace_name(mini.run_id, "teardown")
    cluster.create_namespace(ns, mini.run_id)
    # A pod outside any policy's scope (this mini-run has its own run id).
    assert cluster.create(k8s.pod("p", ns, pushed.by_tag, mini.run_id)).admitted
    policy = res.render_policy((run_state.public_key.read_text(),))
    policy["metadata"]["name"] = f"check-image-{mini.run_id}"
    policy["spec"]["validationFailureAction"] = "Audit"
    policy["spec"]["rules"][0]["verifyImages"][0]["mutateDigest"] = False
    kyverno.Policies(cluster).apply(policy)
    before = res.leftovers()
    assert set(before) == {"namespaces", "policies", "images"}, before

    errors = res.teardown()
    assert not errors, errors
    after = res.leftovers(wait=signcheck_run.settings.timeouts.namespace_delete)
    assert after == {}, f"left behind: {after}"

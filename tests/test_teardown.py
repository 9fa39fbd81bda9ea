"""SEED-08: "Delete the resources you created": the run's teardown leaves nothing behind.

The session's own teardown happens after the last test (and the summary records what, if
anything, it left: `teardown.leftovers`, failing the run). This test proves the same
object-by-object teardown on a miniature run of its own (namespace, pod, policy, image),
while the suite can still observe it. The miniature run is made and torn down with the
session resources (`signcheck.run.teardown_probe`), so its namespace deletion, which no cluster
finishes in under 5 s, has run out by the time this test looks.
"""

from __future__ import annotations

import pytest

from signcheck.run import removal
from signcheck.run.resources import RunResources, SessionState
from signcheck.suite.session import SigncheckRun
from signcheck.target import Target

# Only the seed's session resources: a run of the seed's tests alone makes nothing more.
pytestmark = pytest.mark.seed_only


@pytest.mark.scenario(
    "SEED-08",
    step="Delete the resources you created: nothing is left",
    expect="a miniature run's namespaces, policies and images all gone after its teardown",
)
@pytest.mark.late
def test_teardown_removes_everything(
    target: Target, signcheck_run: SigncheckRun, run_state: SessionState
) -> None:
    """What a run creates (namespaces, policies, images), its teardown removes."""
    probe = run_state.teardown_probe
    assert probe, "the session resources carry no miniature run (teardown_probe.start)"
    # Control: the miniature run really existed, so "nothing left" below means removed.
    assert set(probe["before"]) == {"namespaces", "policies", "images"}, probe["before"]
    assert not probe["errors"], probe["errors"]
    res = RunResources(target, signcheck_run.settings, signcheck_run.phases)
    mini = res.for_run(probe["run_id"])
    after = removal.leftovers(mini, wait=signcheck_run.settings.timeouts.namespace_delete)
    assert after == {}, f"left behind: {after}"

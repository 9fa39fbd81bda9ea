"""A failure describes the policy in the cluster, not the suite's own copy of it: the run's
ClusterPolicy is switched to Audit on the cluster mid-run (the suite's copy still says
`enforce`), and the unsigned pod that is then admitted must be explained by what the live
object holds, checked, rather than by the copy or by a list of guesses."""

from __future__ import annotations

from pathlib import Path

import pytest

from selftests.safety.harness import Dirs, SuiteRun

pytestmark = [pytest.mark.integration]


def test_admitted_unsigned_pod_is_explained_by_the_live_policy(tmp_path: Path) -> None:
    dirs = Dirs.under(tmp_path)
    run = SuiteRun.start(
        dirs,
        tmp_path / "reports",
        "-k",
        "test_signed_pod_admitted_and_running or test_unsigned_pod_denied",
        "-p",
        "selftests.suite.audit_midrun",
        env=dirs.environ(SIGNCHECK_AUDIT_BEFORE="test_unsigned_pod_denied"),
    )
    returncode = run.wait_or_stop(600, "the run did not end")
    summary = run.summary()
    by_scenario = {t["scenario"]: t for t in summary["tests"]}
    assert by_scenario["SEED-05"]["outcome"] == "pass", by_scenario  # enforced until here
    seed06 = by_scenario["SEED-06"]
    assert seed06["outcome"] == "fail", seed06
    message = seed06["message"]
    assert "unsigned pod was ADMITTED but must be denied" in message, message
    # The local target's cluster is the run's own: the policy has the seed's name.
    assert "Checked on the cluster: ClusterPolicy check-image exists" in message, message
    assert "validationFailureAction=Audit (Audit only reports)" in message, message
    assert ", Ready;" in message, message
    assert "matches its imageReferences" in message, message
    # Neither the suite's copy (enforce) nor guesses.
    assert "enforce" not in message and "a missing policy" not in message, message
    assert returncode == 1, run.output[-3000:]

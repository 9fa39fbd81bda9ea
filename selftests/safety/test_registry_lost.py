"""The registry lost mid-run: Kyverno can no longer read it, so no admission answer says
anything about signatures.

The local target's registry is SIGKILLed just before SEED-06 (by the `stop_kyverno` plugin,
told to stop the registry). The test that meets the registry's failure must end as
`environment` with the registry's error as its cause, and the run must stop there instead
of meeting the same failure in every later test.
"""

from __future__ import annotations

import pytest

from selftests.safety.harness import Dirs, SuiteRun, local_leftovers

pytestmark = [pytest.mark.integration]


def test_registry_killed_mid_run_stops_the_run_with_its_cause(dirs: Dirs) -> None:
    run = SuiteRun.start(
        dirs,
        dirs.suite.parent / "reports",
        "-p",
        "selftests.safety.stop_kyverno",
        env=dirs.environ(
            SIGNCHECK_STOP_KYVERNO_BEFORE="test_unsigned_pod_denied",
            SIGNCHECK_STOP_SERVICE="registry",
        ),
    )
    run.wait_run_id()
    run.wait_or_stop(240, "the run did not end")
    summary = run.summary()
    by_scenario = {t["scenario"]: t for t in summary["tests"] if t["scenario"]}
    outcomes = {s: t["outcome"] for s, t in by_scenario.items()}
    assert outcomes.get("SEED-05") == "pass", outcomes  # the registry was up until here
    seed06 = by_scenario.get("SEED-06")
    assert seed06 is not None, outcomes
    assert (seed06["outcome"], seed06["failure"]) == ("environment", "environment"), seed06
    assert "Kyverno could not read the registry" in seed06["cause"], seed06
    assert "connection refused" in seed06["cause"], seed06
    assert "says nothing about signatures" in seed06["cause"], seed06
    # Stopped at the first such failure: nothing after SEED-06 met it again.
    later = {s for s in outcomes if s > "SEED-06"}
    assert not later, f"the run went on after the registry failed: {outcomes}"
    assert summary["verdict"]["state"] == "undetermined", summary["verdict"]
    assert "Kyverno could not read the registry" in summary["verdict"]["cause"], summary["verdict"]
    assert "environment error" in run.output
    assert run.returncode == 6, run.output[-3000:]
    assert local_leftovers(run) == {}

"""`--policy-reporter`: the release is installed before the tests and removed after them,
and SEED-09 finds the signed pod's `pass` in Kyverno's PolicyReports (real Kyverno, real
reports-controller). The chart is a named stand-in (see its Chart.yaml): the published one
cannot be downloaded here."""

from __future__ import annotations

from pathlib import Path

import pytest

from selftests.cluster.conftest import ClusterUnderTest
from signcheck.tools import helm, pins

pytestmark = pytest.mark.integration

STAND_IN = Path(__file__).parent / "charts" / "policy-reporter-stand-in"


def test_policy_reporter_release_and_reports(
    some_cluster: ClusterUnderTest, tmp_path: Path
) -> None:
    if not pins.resolve("helm").ok:
        pytest.skip("helm not built")
    outcome = some_cluster.run(
        tmp_path,
        "--policy-reporter",
        "--policy-reporter-chart",
        str(STAND_IN),
        tests=("tests/test_policy_reporter.py", "tests/test_seed.py::test_policy_ready"),
    )
    assert outcome.returncode == 0, outcome.output[-4000:]
    by_scenario = {t["scenario"]: t["outcome"] for t in outcome.tests}
    assert by_scenario == {"SEED-09": "pass", "SEED-04": "pass"}, outcome.tests
    h = helm.Helm.pinned(some_cluster.kubeconfig)
    assert not h.releases("policy-reporter"), "the run's Policy Reporter release was left"


def test_without_the_option_the_step_is_skipped(
    some_cluster: ClusterUnderTest, tmp_path: Path
) -> None:
    outcome = some_cluster.run(tmp_path, tests=("tests/test_policy_reporter.py",))
    assert [t["outcome"] for t in outcome.tests] == ["skipped"], outcome.tests

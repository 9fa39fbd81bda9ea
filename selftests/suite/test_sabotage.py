"""The suite notices a broken setup: run the conformance suite on the local target with the
policy missing, in Audit, or holding another key, and check that exactly the right tests
fail, each with a message that says why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]

EXPECTED = {
    # sabotage -> {scenario: (result class, substring of the failure message)}. SEED-04 reads
    # the policy itself; the admission scenarios are not judged: the canary names the cause.
    "no-policy": {
        "SEED-04": ("fail", "no verifyImages policy is applied"),
        "SEED-05": ("environment", "ClusterPolicy check-image is not in the cluster"),
        "SEED-06": ("environment", "ClusterPolicy check-image is not in the cluster"),
        "SEED-07": ("environment", "ClusterPolicy check-image is not in the cluster"),
    },
    "audit": {
        "SEED-04": ("fail", "validationFailureAction=Audit"),
        "SEED-05": ("environment", "is in Audit on the cluster"),
        "SEED-06": ("environment", "is in Audit on the cluster"),
        "SEED-07": ("environment", "is in Audit on the cluster"),
    },
    "other-key": {
        "SEED-04": ("fail", "not the key the signed image was signed with"),
        "SEED-05": ("environment", "does not hold the key that signed the run's image"),
        "SEED-06": ("environment", "does not hold the key that signed the run's image"),
        "SEED-07": ("environment", "does not hold the key that signed the run's image"),
    },
}


def _local_env_available() -> bool:
    try:
        import signcheck.localenv  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _local_env_available(), reason="signcheck.localenv not present")
@pytest.mark.parametrize("sabotage", sorted(EXPECTED))
def test_broken_setup_fails_the_right_tests(sabotage: str, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            # The seed's scenarios: what the sabotage breaks (the main policy). The scenarios
            # beyond the seed run under their own policy variants.
            "tests/test_seed.py",
            "-p",
            "no:cacheprovider",
            "-q",
            "--signcheck-reports",
            str(reports),
            "--signcheck-sabotage",
            sabotage,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    summary = json.loads((reports / "summary.json").read_text())
    failed = {
        t["scenario"]: (t["outcome"], t["message"])
        for t in summary["tests"]
        if t["outcome"] != "pass"
    }
    expected = EXPECTED[sabotage]
    assert set(failed) == set(expected), (proc.stdout[-4000:], failed)
    for scenario, (outcome, why) in expected.items():
        assert failed[scenario][0] == outcome, (scenario, failed[scenario])
        assert why in failed[scenario][1], f"{scenario}: {failed[scenario]!r} lacks {why!r}"
    assert summary["teardown"].get("clean") is True, summary["teardown"]
    assert proc.returncode == 1

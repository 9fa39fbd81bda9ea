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
    # sabotage -> {scenario: substring of the failure message}
    "no-policy": {
        "SEED-04": "no verifyImages policy is applied",
        "SEED-05": "not verified at admission",
        "SEED-06": "ADMITTED but must be denied. no verifyImages policy",
        "SEED-07": "ADMITTED but must be denied. no verifyImages policy",
    },
    "audit": {
        "SEED-04": "validationFailureAction=Audit",
        "SEED-05": "not verified at admission",
        "SEED-06": "validationFailureAction=Audit",
        "SEED-07": "validationFailureAction=Audit",
    },
    "other-key": {
        "SEED-04": "not the key the signed image was signed with",
        "SEED-05": "signed pod was DENIED",
        "SEED-06": "signed control pod was DENIED",
        "SEED-07": "signed control pod was DENIED",
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
    failed = {t["scenario"]: t["message"] for t in summary["tests"] if t["outcome"] != "pass"}
    expected = EXPECTED[sabotage]
    assert set(failed) == set(expected), (proc.stdout[-4000:], failed)
    for scenario, why in expected.items():
        assert why in failed[scenario], f"{scenario}: {failed[scenario]!r} lacks {why!r}"
    assert summary["teardown"].get("clean") is True, summary["teardown"]
    assert proc.returncode == 1

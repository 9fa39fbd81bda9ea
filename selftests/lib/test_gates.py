"""Version-gated outcomes: a gate turns a described failure on an older Kyverno into that
version's class (finding or environment); anything else stays what it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from signcheck.verdict.gates import Before, gate_for, version_tuple

PINNED = Before(
    "v1.19.0",
    "finding",
    matches=r"not pinned to",
    why="mutateDigest has no effect",
    reference="https://github.com/kyverno/kyverno/pull/16815",
    severity="medium",
    cases=("ivpol",),
)


def test_versions_compare_numerically() -> None:
    assert version_tuple("v1.18.2") < version_tuple("v1.19.0") <= version_tuple("1.19")
    assert version_tuple("v1.19.0-rc.1") == (1, 19, 0)
    assert version_tuple("v1.9.0") < version_tuple("v1.10.0")


def test_a_gate_applies_below_its_version_to_its_cases_and_described_failures() -> None:
    text = "container 'app' is not pinned to the verified digest"
    assert gate_for((PINNED,), "v1.18.2", "ivpol", text) is PINNED
    assert gate_for((PINNED,), "v1.19.1", "ivpol", text) is None  # fixed there: a failure
    assert gate_for((PINNED,), "v1.18.2", "cpol", text) is None  # another case
    assert gate_for((PINNED,), "v1.18.2", "deployment-ivpol", text) is PINNED  # a part of it
    assert gate_for((PINNED,), "v1.18.2", "ivpol", "admitted an unsigned image") is None
    assert gate_for((PINNED,), None, "ivpol", text) is None  # version unknown: not judged so


def test_the_finding_names_version_reference_and_fix() -> None:
    finding = PINNED.finding("REF-03.ivpol", "v1.18.2", "evidence text")
    assert finding.title == "Kyverno v1.18.2: mutateDigest has no effect"
    assert finding.remediation == "upgrade Kyverno to v1.19.0 or later"
    assert finding.reference.endswith("16815") and finding.evidence == "evidence text"
    assert "before v1.19.0 (ivpol): finding" in PINNED.summary()


GATED = """
import pytest
import signcheck.suite.gating as gating
from signcheck.verdict.gates import Before

gating.kyverno_version = lambda config: "v1.18.2"
OLD = Before("v1.19.0", "finding", matches="not pinned", why="mutateDigest has no effect",
             reference="https://example.invalid/16815")
OFFLINE = Before("v1.19.0", "environment", matches="trust root", why="needs the public trust root",
                 reference="https://example.invalid/tuf")

@pytest.mark.scenario("DEMO-10", step="gated, described", versions=(OLD,))
def test_described():
    assert False, "container 'app' is not pinned to the verified digest"

@pytest.mark.scenario("DEMO-11", step="gated, another failure", versions=(OLD,))
def test_not_described():
    assert False, "an unsigned image was admitted"

@pytest.mark.scenario("DEMO-12", step="gated, offline", versions=(OFFLINE,))
def test_offline():
    assert False, "denied: failed to load the trust root"

@pytest.mark.scenario("DEMO-13", step="gated, passes", versions=(OLD,))
def test_passes():
    pass
"""


def test_gates_through_pytest(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    pytester.makepyfile(test_demo=GATED)
    pytester.runpytest_subprocess("-p", "signcheck.suite.plugin", "--signcheck-reports", "out")
    summary = json.loads((pytester.path / "out" / "summary.json").read_text())
    outcome = {t["scenario"]: t for t in summary["tests"]}
    assert outcome["DEMO-10"]["outcome"] == "finding"
    assert outcome["DEMO-10"]["finding"]["title"] == "Kyverno v1.18.2: mutateDigest has no effect"
    assert "not pinned" in outcome["DEMO-10"]["finding"]["evidence"]
    assert outcome["DEMO-11"]["outcome"] == "fail"  # a failure the gate does not describe
    assert outcome["DEMO-12"]["outcome"] == "environment"
    assert "needs the public trust root" in outcome["DEMO-12"]["cause"]
    assert outcome["DEMO-13"]["outcome"] == "pass"
    assert summary["verdict"]["state"] == "not enforced"

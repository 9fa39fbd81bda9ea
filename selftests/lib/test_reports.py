"""The pytest plugin's reports without any cluster: scenario IDs, outcomes, the three files,
and planted secrets that must appear in none of them (nor on the terminal)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

PLANTED = {
    "COSIGN_PASSWORD": "planted-cosign-password-8f3a",
    "SIGNCHECK_REGISTRY_PASSWORD": "planted-registry-password-77c1",
    "YC_IAM_TOKEN": "planted-iam-token-t1.9euelZq",
}

TESTS = """
import os
import pytest

@pytest.mark.scenario("DEMO-01", step="a step that passes")
def test_ok():
    print("password is", os.environ["COSIGN_PASSWORD"])

@pytest.mark.scenario("DEMO-02", step="a step that fails")
def test_fails():
    secret = os.environ["SIGNCHECK_REGISTRY_PASSWORD"]
    key = ("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\\nQUJD\\n"
           "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----")
    print(key, os.environ["YC_IAM_TOKEN"])
    assert secret == "something else", f"registry said no to {secret}"

def test_without_scenario():
    pass
"""


@pytest.fixture
def reports(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.RunResult:
    for key, value in PLANTED.items():
        monkeypatch.setenv(key, value)
    # The subprocess runs in a temporary directory: make it import this checkout, not
    # whichever one the installed package points at.
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    pytester.makepyfile(test_demo=TESTS)
    return pytester.runpytest_subprocess(
        "-p", "signcheck.suite.plugin", "--signcheck-reports", "out", "-rA"
    )


def test_three_reports_with_scenarios(pytester: pytest.Pytester, reports: pytest.RunResult) -> None:
    reports.assert_outcomes(passed=2, failed=1)
    out = pytester.path / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schema"] == "signcheck.summary/v2" and summary["run_id"]
    by_scenario = {t["scenario"]: t for t in summary["tests"] if t["scenario"]}
    assert by_scenario["DEMO-01"]["outcome"] == "pass"
    assert by_scenario["DEMO-02"]["outcome"] == "fail"
    assert "registry said no" in by_scenario["DEMO-02"]["message"]
    totals = {"pass": 2, "fail": 1, "finding": 0, "environment": 0, "skipped": 0, "total": 3}
    assert summary["totals"] == totals
    assert "tests" in summary["phases"]
    junit = ET.parse(out / "junit.xml").getroot()
    props = {p.get("value") for p in junit.iter("property") if p.get("name") == "scenario"}
    assert props == {"DEMO-01", "DEMO-02"}
    html = (out / "report.html").read_text()
    assert "DEMO-02" in html and "a step that fails" in html
    reports.stdout.fnmatch_lines(["*signcheck reports*", "*summary*summary.json"])


def test_no_planted_secret_anywhere(pytester: pytest.Pytester, reports: pytest.RunResult) -> None:
    from selftests.safety import leaks

    out = pytester.path / "out"
    # The HTML report keeps its data HTML-escaped and its extras base64-encoded: decoded.
    outputs = leaks.html_texts((out / "report.html").read_text())
    outputs |= {p.name: p.read_text() for p in out.iterdir() if p.name != "report.html"}
    outputs["terminal"] = reports.stdout.str() + reports.stderr.str()
    assert leaks.find(outputs, {**PLANTED, "private key": "QUJD"}) == []
    assert "[REDACTED]" in outputs["summary.json"]

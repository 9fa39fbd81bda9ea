"""The result model end to end through pytest, without a cluster: the five result classes, the
verdict sentence, the findings printed last, the exit code per `--fail-on`, and JUnit (a
finding is a passed testcase with properties, a failure a failure)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from signcheck.verdict.model import (
    EXIT_BAD_INPUT,
    EXIT_ENVIRONMENT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Finding,
    exit_code,
    verdict,
)

FINDING = """
import pytest
from signcheck.verdict.observe import observe

@pytest.mark.scenario("DEMO-01", step="a step that passes")
def test_ok():
    pass

@pytest.mark.scenario("DEMO-02", step="a gap the cluster has")
def test_gap():
    observe("DEMO-02", "an unsigned image got in by a side door", "high",
            "close the side door", reference="https://example.invalid/advisory")

@pytest.mark.scenario("DEMO-03", step="a caveat")
def test_caveat():
    observe("DEMO-03", "a weakening", "low", "tighten it")

@pytest.mark.scenario("DEMO-04", step="not here")
def test_skip():
    pytest.skip("not applicable")
"""

BROKEN = """
import pytest
from signcheck.errors import EnvironmentNotReady

@pytest.fixture(scope="session")
def wall():
    raise EnvironmentNotReady("Kyverno's webhook never sees namespace x: fix the selector")

@pytest.mark.scenario("DEMO-05", step="blocked")
def test_blocked(wall):
    pass

@pytest.mark.scenario("DEMO-06", step="blocked too")
def test_blocked_too(wall):
    pass

@pytest.mark.scenario("DEMO-07", step="independent")
def test_independent():
    pass
"""


def _run(pytester: pytest.Pytester, source: str, *args: str) -> tuple[pytest.RunResult, dict]:
    pytester.makepyfile(test_demo=source)
    result = pytester.runpytest_subprocess(
        "-p", "signcheck.suite.plugin", "--signcheck-reports", "out", *args
    )
    summary = json.loads((pytester.path / "out" / "summary.json").read_text())
    return result, summary


@pytest.fixture(autouse=True)
def _this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))


def test_findings_are_results_and_printed_last(pytester: pytest.Pytester) -> None:
    result, summary = _run(pytester, FINDING)
    assert result.ret == EXIT_OK
    outcomes = {t["scenario"]: t["outcome"] for t in summary["tests"]}
    assert outcomes == {
        "DEMO-01": "pass",
        "DEMO-02": "finding",
        "DEMO-03": "finding",
        "DEMO-04": "skipped",
    }
    v = summary["verdict"]
    assert v["state"] == "enforced" and v["sentence"] == "enforced, with 2 findings (1 high)"
    assert (v["fail_on"], v["exit_code"]) == ("fail", 0)
    assert [f["id"] for f in summary["findings"]] == ["DEMO-02", "DEMO-03"]  # high first
    assert summary["findings"][0]["remediation"] == "close the side door"
    lines = result.stdout.lines
    at = next(i for i, ln in enumerate(lines) if "signcheck verdict: enforced" in ln)
    assert "[HIGH] DEMO-02: an unsigned image got in by a side door" in lines[at + 1]
    assert "fix: close the side door" in lines[at + 2]
    assert lines[-1].startswith("exit code 0 (--fail-on fail")
    assert any("2 finding" in ln and "1 passed" in ln for ln in lines)
    junit = ET.parse(pytester.path / "out" / "junit.xml").getroot()
    (case,) = [c for c in junit.iter("testcase") if c.get("name") == "test_gap"]
    assert case.find("failure") is None and case.find("skipped") is None
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["finding_severity"] == "high"
    assert json.loads(props["finding"])["reference"] == "https://example.invalid/advisory"


@pytest.mark.parametrize(("fail_on", "code"), [("high", EXIT_FAILED), ("finding", EXIT_FAILED)])
def test_fail_on_turns_findings_into_a_failed_run(
    pytester: pytest.Pytester, fail_on: str, code: int
) -> None:
    result, summary = _run(pytester, FINDING, "--fail-on", fail_on)
    assert result.ret == code and summary["verdict"]["exit_code"] == code


def test_fail_on_high_ignores_low_findings(pytester: pytest.Pytester) -> None:
    source = FINDING.replace('"high",', '"medium",')
    result, _ = _run(pytester, source, "--fail-on", "high")
    assert result.ret == EXIT_OK


def test_an_environment_wall_is_one_cause_not_failures(pytester: pytest.Pytester) -> None:
    result, summary = _run(pytester, BROKEN)
    outcomes = {t["scenario"]: t["outcome"] for t in summary["tests"]}
    assert outcomes == {"DEMO-05": "environment", "DEMO-06": "environment", "DEMO-07": "pass"}
    cause = "Kyverno's webhook never sees namespace x: fix the selector"
    assert {t["cause"] for t in summary["tests"] if t["outcome"] == "environment"} == {cause}
    v = summary["verdict"]
    assert v["state"] == "undetermined" and v["cause"] == cause
    assert result.ret == EXIT_ENVIRONMENT
    assert "Traceback" not in result.stdout.str()
    assert any("2 environment" in ln for ln in result.stdout.lines)


def test_a_broken_promise_outranks_everything() -> None:
    high = Finding("X", "t", "high", "r")
    v = verdict(["pass", "fail", "environment", "finding"], [high])
    assert v.state == "not enforced" and v.sentence.startswith("NOT enforced: 1 scenario")
    assert exit_code(v, [high], "fail") == EXIT_FAILED


def test_findings_not_affecting_this_cluster_do_not_count() -> None:
    only_in_principle = Finding("X", "t", "high", "r", affected=False)
    v = verdict(["pass"], [only_in_principle])
    assert v.sentence == "enforced"
    assert exit_code(v, [only_in_principle], "finding") == EXIT_OK


def test_nothing_judged_is_undetermined() -> None:
    v = verdict(["skipped"], [])
    assert v.state == "undetermined" and "no scenario ran" in v.sentence


@pytest.mark.parametrize("source", [FINDING, BROKEN], ids=["findings", "environment"])
def test_summary_matches_its_documented_schema(pytester: pytest.Pytester, source: str) -> None:
    import jsonschema

    schema = json.loads((Path(__file__).parents[2] / "docs" / "summary.schema.json").read_text())
    _, summary = _run(pytester, source)
    jsonschema.validate(summary, schema)


def test_junit_counts_failures_not_findings(pytester: pytest.Pytester) -> None:
    """CI consumers count JUnit failures and errors: findings are not among them, an
    environment wall is (as errors in setup), and the document stays one valid testsuite."""
    source = FINDING + BROKEN.replace("import pytest\n", "", 1)
    _, summary = _run(pytester, source)
    suite = ET.parse(pytester.path / "out" / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert int(suite.get("tests", -1)) == summary["totals"]["total"] == 7
    assert int(suite.get("failures", -1)) == 0
    assert int(suite.get("errors", -1)) == summary["totals"]["environment"] == 2
    assert int(suite.get("skipped", -1)) == summary["totals"]["skipped"] == 1


BAD_INPUT = """
import pytest
from signcheck.errors import ConfigError

@pytest.fixture(scope="session")
def key():
    raise ConfigError("--signing-key /nowhere/cosign.key does not exist: pass a cosign.key")

@pytest.mark.scenario("DEMO-08", step="needs the key")
def test_needs_key(key):
    pass
"""

INTERRUPTED = """
import pytest

@pytest.mark.scenario("DEMO-09", step="passes")
def test_first():
    pass

@pytest.mark.scenario("DEMO-10", step="interrupted")
def test_interrupted():
    raise KeyboardInterrupt
"""


def test_a_wrong_input_met_in_a_fixture_exits_4(pytester: pytest.Pytester) -> None:
    result, summary = _run(pytester, BAD_INPUT)
    (test,) = summary["tests"]
    assert (test["outcome"], test["failure"]) == ("environment", "input")
    assert result.ret == EXIT_BAD_INPUT == summary["verdict"]["exit_code"]
    result.stdout.fnmatch_lines(
        ["*signcheck: not judged*", "1 not judged (DEMO-08): --signing-key /nowhere/cosign.key*"]
    )


def test_the_printed_exit_code_is_the_one_pytest_returns(pytester: pytest.Pytester) -> None:
    result, summary = _run(pytester, INTERRUPTED)
    assert result.ret == EXIT_INTERRUPTED == summary["verdict"]["exit_code"]
    outcomes = {t["scenario"]: (t["outcome"], t["pytest_outcome"]) for t in summary["tests"]}
    assert outcomes["DEMO-09"] == ("pass", "passed")
    assert outcomes["DEMO-10"][0] == "environment"
    assert result.stdout.lines[-1].startswith("exit code 2 ")

"""The owner's result collector: test reports become `TestResult`s for the summary; at the
session's very end it finishes the run and prints the run's problems and reports."""

from __future__ import annotations

import json
from typing import Any

import pytest

from signcheck import redact
from signcheck.report.summary import TestResult
from signcheck.suite import html
from signcheck.suite.session import SigncheckRun
from signcheck.verdict.model import EXIT_ENVIRONMENT

PLUGIN_PROPERTIES = frozenset(
    {
        "scenario",
        "seed_step",
        "expect",
        "proves",
        "admission",
        "compat",
        "environment_error",
        "bad_input",
        "finding",
        "finding_severity",
        "finding_remediation",
    }
)
"""The properties the plugin itself records; any other is the test's own observation."""

KEEP_EXIT = {
    int(pytest.ExitCode.INTERRUPTED),
    int(pytest.ExitCode.INTERNAL_ERROR),
    int(pytest.ExitCode.USAGE_ERROR),
    int(pytest.ExitCode.NO_TESTS_COLLECTED),
    EXIT_ENVIRONMENT,
}
"""Exit codes pytest or the boot decided, which the verdict does not override."""


class Collector:
    """Turns test reports into `TestResult`s (one per test id), each in one result class."""

    def __init__(self, run: SigncheckRun) -> None:
        self.run = run
        self.by_id: dict[str, TestResult] = {}
        self.first_start: float | None = None
        self.last_stop: float | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        start, stop = getattr(report, "start", None), getattr(report, "stop", None)
        if start is not None:
            self.first_start = min(self.first_start or start, start)
        if stop is not None:
            self.last_stop = max(self.last_stop or stop, stop)
        props = dict(report.user_properties)
        result = self.by_id.get(report.nodeid)
        if result is None:
            # No class until a phase decides one: a test interrupted after its setup has none.
            result = TestResult(report.nodeid, "", 0.0, pytest_outcome="")
            self.by_id[report.nodeid] = result
        result.duration = round(result.duration + report.duration, 3)
        if "scenario" in props:
            result.scenario = str(props["scenario"])
            result.step = str(props.get("seed_step", ""))
            result.expect = str(props.get("expect", ""))
            result.proves = str(props.get("proves", ""))
        if "admission" in props:
            result.admission = json.loads(str(props["admission"]))
        if "compat" in props:
            result.compat = json.loads(str(props["compat"]))
        for name, value in props.items():
            if name not in PLUGIN_PROPERTIES:
                result.observed[name] = redact.redact(str(value))
        if report.failed or report.skipped:
            result.message = redact.redact(_short_message(report))
        _classify(result, report, props)

    def finish_results(self, session: pytest.Session) -> list[TestResult]:
        """Every result with its class; a test that never finished is `environment`."""
        interrupted = session.shouldstop or session.shouldfail
        for result in self.by_id.values():
            if not result.outcome:
                result.outcome = "environment"
                result.pytest_outcome = result.pytest_outcome or "interrupted"
                result.cause = (
                    f"the run stopped before this test finished ({interrupted})"
                    if isinstance(interrupted, str)
                    else "the run was interrupted before this test finished"
                )
                result.failure = "environment"
                result.message = result.message or result.cause
        return list(self.by_id.values())

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # Last: after pytest's own sessionfinish tore down the fixtures still set up (an
        # interrupted test's namespace), which need the target this removes.
        run = self.run
        if self.first_start is not None and self.last_stop is not None:
            window = self.last_stop - self.first_start
            # Session setup (boot, images, signing, policy) runs inside the first test's
            # setup in a serial run; it is reported as its own phases, not as test time.
            setup = run.phases.overlap(self.first_start, self.last_stop)
            run.phases.add("tests", max(0.0, window - setup), (self.first_start, self.last_stop))
        run.summary.tests = self.finish_results(session)
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        decided = int(session.exitstatus) if int(session.exitstatus) in KEEP_EXIT else None
        run.finish(announce=tr.write_line if tr is not None else None, exit_code=decided)
        if run.judges:
            html.complete(session.config, run.summary)
        if not run.judges:
            if run.summary.problems and session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        session.exitstatus = int(run.summary.verdict.get("exit_code", session.exitstatus))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        run = self.run
        tr = terminalreporter
        for problem in run.summary.problems:
            if run.boot_error_shown and problem.startswith("environment: "):
                continue  # already the run's one error line (pytest.exit's reason)
            tr.write_line(redact.redact(f"signcheck: {problem}"), red=True)
        self._not_judged(tr)
        if run.settings.keep:
            tr.write_line(f"signcheck: --keep: the run's keys and state stay in {run.run_dir}")
        if run.reports_enabled:
            tr.write_sep("-", "signcheck reports")
            for name, path in run.summary.reports.items():
                tr.write_line(f"{name:8} {path}")
            if run.summary.phases:
                phases = ", ".join(f"{k} {v:.1f}s" for k, v in run.summary.phases.items())
                tr.write_line(f"phases   {phases}")

    def _not_judged(self, tr: Any) -> None:
        """The tests the run could not judge, one block per cause (pytest lists only its own
        failures and errors; these are neither)."""
        by_cause: dict[str, list[str]] = {}
        for t in self.run.summary.tests:
            if t.outcome == "environment":
                by_cause.setdefault(t.cause or t.message, []).append(t.scenario or t.nodeid)
        if not by_cause:
            return
        tr.write_sep("-", "signcheck: not judged")
        for cause, names in by_cause.items():
            shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
            tr.write_line(redact.redact(f"{len(names)} not judged ({shown}): {cause}"), yellow=True)


def _short_message(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    text = str(report.longrepr or "")
    lines = [ln for ln in text.splitlines() if ln.startswith("E ")]
    return "\n".join(lines[:20]) if lines else text[-2000:]


_PYTEST_TO_RESULT = {"passed": "pass", "failed": "fail", "skipped": "skipped"}


def _classify(result: TestResult, report: pytest.TestReport, props: dict[str, Any]) -> None:
    """The result class from one phase's report (the plugin's properties decide first)."""
    if report.when == "call":
        result.pytest_outcome = report.outcome
        if hasattr(report, "wasxfail"):
            # Not a result signcheck knows: a gap is a finding, so a stray xfail counts as a
            # failure rather than hiding what it watched.
            result.pytest_outcome = "xfailed" if report.skipped else "xpassed"
            result.outcome = "fail" if report.skipped else "pass"
            if report.skipped:
                result.message = "xfail is not a signcheck result (use a finding): " + str(
                    report.wasxfail
                )
            return
    elif report.failed:
        result.pytest_outcome = "error"
    elif report.skipped and report.when == "setup":
        result.pytest_outcome = "skipped"
    if "environment_error" in props and report.failed:
        # Not a verdict on signatures: the registry, the webhook or the cluster failed.
        result.outcome = "environment"
        result.failure = "input" if "bad_input" in props else "environment"
        result.cause = str(props["environment_error"])
    elif "finding" in props and report.when == "call" and report.passed:
        result.outcome = "finding"
        result.finding = json.loads(str(props["finding"]))
    elif report.when == "call":
        result.outcome = _PYTEST_TO_RESULT.get(report.outcome, "fail")
    elif report.failed and result.outcome != "environment":
        result.outcome = "fail"
    elif report.skipped and report.when == "setup":
        result.outcome = "skipped"

"""The pytest side of signcheck: the run's hooks (configure, collection order, xdist hand-over,
boot before the first test, stale-run reaping), evidence on failure and redaction of every
test report. The run itself is `signcheck.suite.session`, the options `signcheck.suite.options`,
the results `signcheck.suite.collector`, the HTML page `signcheck.suite.html`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import traceback
from collections.abc import Generator
from typing import Any

import pytest

from signcheck import redact
from signcheck.clients.k8s import Cluster
from signcheck.errors import RUN_STOPPERS, ConfigError, SigncheckError
from signcheck.report import catalogue, evidence
from signcheck.report.summary import admission_text
from signcheck.run import interrupts, stale
from signcheck.suite import expect, gating, html
from signcheck.suite.collector import Collector
from signcheck.suite.interrupt_report import drop_lineless_entries
from signcheck.suite.session import SigncheckRun, attach, find_run, get_run
from signcheck.suite.stash import ADMISSIONS, COMPAT, NAMESPACE, STARTED
from signcheck.verdict import terminal
from signcheck.verdict.model import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, Finding
from signcheck.verdict.observe import FindingObserved

# `-p signcheck.suite.plugin` alone is enough: its options come with it (a no-op when the
# pytest11 entry point registered them already).
pytest_plugins = ["signcheck.suite.options"]


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "scenario(id, step, expect): the conformance scenario a test proves (stable ID)",
    )
    config.addinivalue_line("markers", "integration: needs real tools (registry, cosign)")
    config.addinivalue_line(
        "markers", "expect(text): a parametrized case's own expected outcome (catalogue)"
    )
    config.addinivalue_line(
        "markers", "late: run after the other tests (it waits for something started at setup)"
    )
    config.addinivalue_line("markers", "canary: run before every other test")
    config.addinivalue_line(
        "markers",
        "seed_only: uses only the seed's session resources (a run of such tests alone makes "
        "no scenario images, third key or policy variants)",
    )
    run = SigncheckRun(config)
    attach(config, run)
    config.pluginmanager.register(html, "signcheck-html")
    if run.is_owner:
        run.restore_sigterm = interrupts.sigterm_interrupts()
    if run.reports_enabled and run.is_owner:
        run.reports_dir.mkdir(parents=True, exist_ok=True)
        # Set before pytest-html and junitxml read them in their own pytest_configure.
        if not config.option.htmlpath:
            config.option.htmlpath = str(run.reports_dir / "report.html")
            config.option.self_contained_html = True
        if not config.option.xmlpath:
            config.option.xmlpath = str(run.reports_dir / "junit.xml")


@pytest.hookimpl(tryfirst=True)
def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    # Before the terminal reporter renders it (see signcheck.suite.interrupt_report).
    drop_lineless_entries(excinfo)


def pytest_unconfigure(config: pytest.Config) -> None:
    run = find_run(config)
    if run is None or not run.is_owner:
        return
    if run.finished and run.judges and run.summary.verdict:
        # Last of all, under pytest's counts: the answer and what to do about the findings.
        tr = config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            terminal.write_verdict(tr, run.summary)
    run.restore_sigterm()
    if run.claim is not None and not run.finished:
        # The session never reached its end (an error while configuring or collecting):
        # nothing was booted unless target.json says so; the next run reaps it if it was.
        if not (run.run_dir / "target.json").is_file() and not run.settings.keep:
            shutil.rmtree(run.run_dir, ignore_errors=True)
        run.claim.release()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The canary runs first (its failure decides what the others can judge). Tests marked
    `late` run after the others (a stable sort keeps every other order): they
    check the outcome of something the run started at setup, such as Kyverno's PolicyReports,
    which appear only after a fixed aggregation delay that the other tests then cover.

    The session resources are made for what was selected: the catalogue's only when a test
    not marked `seed_only` uses them (every xdist worker collects the same items)."""
    items.sort(
        key=lambda item: (
            item.get_closest_marker("canary") is None,
            item.get_closest_marker("late") is not None,
        )
    )
    run = find_run(config)
    if run is not None:
        run.catalogue = any(
            item.get_closest_marker("seed_only") is None
            for item in items
            if "run_state" in getattr(item, "fixturenames", ())
        )


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    run = get_run(node.config)
    node.workerinput["signcheck_run_id"] = run.run_id
    node.workerinput["signcheck_run_dir"] = str(run.run_dir)
    if run.registry_password:
        node.workerinput["signcheck_registry_password"] = run.registry_password


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    # An expected denial that was admitted is explained from the live policy, read from the
    # cluster the test itself uses (its `cluster` fixture, also behind `admit`).
    cluster = getattr(item, "funcargs", {}).get("cluster")
    with expect.checking_on(cluster if isinstance(cluster, Cluster) else None):
        return (yield)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.when == "setup":
        item.stash[STARTED] = call.start
    entry = catalogue.entry(item)
    if entry and report.when == "setup":
        # On the item, so the call and teardown reports carry them too (junitxml reads the
        # teardown report's properties).
        _add_property(item, report, "scenario", entry.id)
        _add_property(item, report, "seed_step", entry.title)
        _add_property(item, report, "expect", entry.expect)
        _add_property(item, report, "proves", entry.proves)
    admissions = item.stash.get(ADMISSIONS, [])
    extras: list[Any] = list(getattr(report, "extras", []))
    if report.when == "call" and admissions:
        _add_property(item, report, "admission", redact.redact(json.dumps(admissions)))
        extras.append(_extra_text(admission_text(admissions), "Admission response"))
    excinfo = call.excinfo
    if excinfo is not None and report.when in ("setup", "call"):
        gated = gating.gated(item, report, excinfo)
        if gated is not None:
            _apply_gate(item, report, gated)
        else:
            _classify_exception(item, report, excinfo)
    compat = item.stash.get(COMPAT, None)
    if report.when == "call" and compat:
        _add_property(item, report, "compat", json.dumps(compat))
    if report.failed and report.when in ("setup", "call"):
        evidence = _evidence(item)
        if evidence:
            report.sections.append(("signcheck evidence", evidence))
            extras.append(_extra_text(evidence, "Evidence"))
    if extras:
        setattr(report, "extras", redact.redact_obj(extras))  # noqa: B010 - pytest-html reads it
    _redact_report(report)


def _record_finding(item: pytest.Item, report: pytest.TestReport, finding: Finding) -> None:
    """The test ends as `finding`: passed for pytest and JUnit, the finding as properties."""
    finding.nodeid = item.nodeid
    report.outcome = "passed"
    report.longrepr = None
    _add_property(item, report, "finding", redact.redact(json.dumps(finding.as_dict())))
    _add_property(item, report, "finding_severity", finding.severity)
    _add_property(item, report, "finding_remediation", redact.redact(finding.remediation))


def _apply_gate(item: pytest.Item, report: pytest.TestReport, gated: gating.Gated) -> None:
    """A version gate's class instead of `fail` (see `signcheck.verdict.gates`)."""
    if gated.finding is not None:
        _record_finding(item, report, gated.finding)
    else:
        _add_property(item, report, "environment_error", gated.cause)
        report.longrepr = f"signcheck: environment: {gated.cause}\n{gated.evidence}"
    _add_property(item, report, "version_gate", gated.gate.summary())


def _classify_exception(
    item: pytest.Item, report: pytest.TestReport, excinfo: pytest.ExceptionInfo[BaseException]
) -> None:
    """A finding ends the test as `finding` (passed for pytest and JUnit, with the finding as
    properties); a SigncheckError as `environment` with its one-line cause, shown without a
    traceback through the library."""
    err = excinfo.value
    if isinstance(err, FindingObserved) and report.when == "call":
        _record_finding(item, report, err.finding)
        return
    if not isinstance(err, SigncheckError) or isinstance(err, FindingObserved):
        return
    cause = redact.redact(err.message.splitlines()[0] if err.message else type(err).__name__)
    if not any(k == "environment_error" for k, _ in report.user_properties):
        _add_property(item, report, "environment_error", cause)
    bad_input = isinstance(err, ConfigError) and not getattr(err, "environment", False)
    if bad_input:
        # A wrong option, file or password met in a fixture: exit 4, like at boot.
        _add_property(item, report, "bad_input", "true")
    what = "bad input" if bad_input else "environment"
    report.longrepr = redact.redact(f"signcheck: {what}: {err}")
    if isinstance(err, RUN_STOPPERS):
        # Kyverno's webhook cannot be called, or Kyverno cannot read the registry: the run
        # says so and stops, rather than meeting the same wall in every later test.
        item.session.shouldfail = f"signcheck: environment error: {cause}"


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> tuple[str, str, tuple[str, dict[str, bool]]] | None:
    """`FINDING` and `ENVIRONMENT` on the terminal and in its final counts."""
    # A collection error's report (CollectReport) has no user properties.
    names = {k for k, _ in getattr(report, "user_properties", ())}
    if report.when == "call" and report.passed and "finding" in names:
        return "finding", "!", ("FINDING", {"yellow": True})
    if report.failed and report.when in ("setup", "call") and "environment_error" in names:
        return "environment", "E", ("ENVIRONMENT", {"yellow": True})
    return None


def _add_property(item: pytest.Item, report: pytest.TestReport, name: str, value: str) -> None:
    item.user_properties.append((name, value))
    report.user_properties.append((name, value))


def _extra_text(text: str, name: str) -> dict[str, Any]:
    from pytest_html import extras

    result: dict[str, Any] = extras.text(redact.redact(text), name=name)
    return result


def _redact_report(report: pytest.TestReport) -> None:
    """Every renderer (terminal, JUnit, HTML, xdist transport) sees only redacted text."""
    if report.longrepr is not None and not isinstance(report.longrepr, tuple):
        text = str(report.longrepr)
        cleaned = redact.redact(text)
        if cleaned != text:
            report.longrepr = cleaned
    report.sections = [(k, redact.redact(v)) for k, v in report.sections]
    report.user_properties = [(k, redact.redact_obj(v)) for k, v in report.user_properties]


def _evidence(item: pytest.Item) -> str:
    """See `signcheck.report.evidence`: admission responses, events, policy status, Kyverno's log
    lines around the test's requests, webhook configurations."""
    run = get_run(item.config)
    target = run.booted_target
    if target is None:
        return ""
    try:
        res = run.resources()
        return evidence.collect(
            target,
            res.cluster,
            namespace=item.stash.get(NAMESPACE, None),
            policy_name=run.policy_name,
            admissions=item.stash.get(ADMISSIONS, []),
            since=item.stash.get(STARTED, time.time() - 60),
        )
    except Exception:
        return redact.redact("evidence collection failed:\n" + traceback.format_exc(limit=3))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    run = get_run(session.config)
    if not run.is_owner:
        return
    session.config.pluginmanager.register(Collector(run), "signcheck-collector")
    # Whatever earlier runs left behind (killed, crashed, interrupted twice) goes first.
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    for line in stale.reap_stale(
        run.runs_root, namespace_wait=run.settings.timeouts.namespace_delete
    ):
        if tr is not None:
            tr.write_line(f"signcheck: cleaned up earlier run {line}")
    # Under xdist the controller runs no fixtures and collects nothing: it boots the target
    # for the workers now, before they start (they get the run id and registry credentials
    # in their workerinput).
    xdist = session.config.pluginmanager.hasplugin("dsession")
    if xdist and not session.config.option.collectonly:
        with contextlib.suppress(SigncheckError):
            run.target()


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Boot the target (and, on cluster targets, run the preflight) before the first test,
    so a target that cannot be used is one error and no test runs at all."""
    run = get_run(session.config)
    if not run.is_owner or session.config.option.collectonly:
        return
    # Only when a test needs the target: a run of tests that do not (the plugin's own
    # selftests) must not boot anything.
    if not any("target" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    run.needs_resources = any(
        "run_state" in getattr(item, "fixturenames", ()) for item in session.items
    )
    try:
        run.target()
    except SigncheckError as err:
        run.boot_error_shown = True
        if err.details:
            tr = session.config.pluginmanager.get_plugin("terminalreporter")
            if tr is not None:
                tr.write_line(redact.redact(err.details))
        bad_input = isinstance(err, ConfigError) and not getattr(err, "environment", False)
        code = EXIT_BAD_INPUT if bad_input else EXIT_ENVIRONMENT
        pytest.exit(redact.redact(f"signcheck: {err.message}"), returncode=code)

"""The pytest side of signcheck: options, the run (id, directory, target, session resources),
evidence on failure, redaction of every test report, and the three reports.

Process roles. The *owner* is the process that is not an xdist worker (the only process of a
serial run, the controller of `-n N`). It owns the run id, the target's lifetime and the
final teardown and summary. Workers receive the run id and run directory from the owner and
create session resources once between them (first worker under a file lock; see
`signcheck.run.shared`). In a serial run the owner boots the target lazily, on the first fixture
that needs it, so `--collect-only` starts nothing.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from signcheck import providers, redact
from signcheck.errors import ConfigError, EnvironmentNotReady, SigncheckError, WebhookUnavailable
from signcheck.report import catalogue, evidence
from signcheck.report.summary import (
    RunSummary,
    TestResult,
    admission_text,
    compatibility_html,
    now_iso,
    write_json,
)
from signcheck.run import claims, interrupts, removal, shared, stale
from signcheck.run.resources import RunResources, State
from signcheck.settings import profile
from signcheck.settings.config import SABOTAGE, Settings
from signcheck.target import Target, new_run_id
from signcheck.timeouts import Timeouts
from signcheck.tools import gobuild
from signcheck.wait import until, waited_seconds

ADMISSIONS = pytest.StashKey[list[dict[str, Any]]]()
STARTED = pytest.StashKey[float]()
"""When the test's setup began (epoch s): the evidence's Kyverno log window opens there."""
NAMESPACE = pytest.StashKey[str]()
COMPAT = pytest.StashKey[dict[str, Any]]()
"""A compatibility result a test recorded (signature format x policy API): reported as a
result of its own, never a silent skip."""


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("signcheck", "signcheck conformance suite")
    # Options that a profile or SIGNCHECK_* variables can also set (CLI > env > profile).
    profile.add_options(g)
    g.addoption(
        "--signcheck-reports",
        default="reports",
        help="directory for report.html, junit.xml, summary.json ('' disables)",
    )
    g.addoption(
        "--signcheck-sabotage",
        choices=SABOTAGE,
        default="none",
        help="break the setup on purpose (selftests prove the suite notices)",
    )


def settings_from(config: pytest.Config) -> Settings:
    cli = {o.field: config.getoption(o.field) for o in profile.OPTIONS}
    cli["profile"] = config.getoption("profile")
    return Settings.from_sources(
        cli,
        reports_dir=Path(config.getoption("signcheck_reports") or "reports"),
        sabotage=config.getoption("signcheck_sabotage"),
        timeouts=Timeouts.from_env(),
    )


def _is_selftest_run(config: pytest.Config) -> bool:
    selftests = config.rootpath / "selftests"
    paths = [Path(str(a).split("::", 1)[0]).resolve() for a in config.args]
    return bool(paths) and all(p.is_relative_to(selftests) for p in paths)


class SigncheckRun:
    """One run, seen from one process."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        try:
            self.settings = settings_from(config)
        except SigncheckError as err:
            raise pytest.UsageError(str(err)) from err
        redact.register_env()
        workerinput = getattr(config, "workerinput", None)
        self.is_owner = workerinput is None
        self.runs_root = claims.runs_root(config.rootpath)
        self._claim: claims.RunClaim | None = None
        if workerinput is not None:
            self.run_id = str(workerinput["signcheck_run_id"])
            self.run_dir = Path(workerinput["signcheck_run_dir"])
            self._password = workerinput.get("signcheck_registry_password")
            self.run_dir.mkdir(parents=True, exist_ok=True)
        else:
            self.run_id = new_run_id()
            # Locked for the life of this process: a later run or `signcheck cleanup` knows
            # from the lock alone whether this run is still alive.
            self._claim = claims.RunClaim.create(
                self.runs_root, self.run_id, target=self.settings.target, keep=self.settings.keep
            )
            self.run_dir = self._claim.run_dir
            self._password = None
        self.phases = shared.Phases(self.run_dir)
        self.reports_enabled = bool(config.getoption("signcheck_reports")) and not (
            _is_selftest_run(config)
        )
        self.reports_dir = (config.rootpath / self.settings.reports_dir).resolve()
        self.started = time.monotonic()
        self.waited_at_start = waited_seconds()
        self.summary = RunSummary(self.run_id, self.settings.target, now_iso())
        self._stack = contextlib.ExitStack()
        self._target: Target | None = None
        self._boot_error: SigncheckError | None = None
        self.boot_error_shown = False
        self._state: State | None = None
        self.finished = False
        self.catalogue = True
        """Whether the selected tests need the scenarios' resources beyond the seed's."""
        self.restore_sigterm: Callable[[], None] = lambda: None

    # -- target -----------------------------------------------------------------------

    def target(self) -> Target:
        if self._target is not None:
            return self._target
        if self._boot_error is not None:
            raise self._boot_error
        if self.is_owner:
            self._target = self._boot()
        else:
            self._target = self._await_target()
        return self._target

    def _boot(self) -> Target:
        try:
            if needed := providers.tools_before_boot(self.settings):
                with self.phases.time("tools"):
                    gobuild.ensure(needed)
            with self.phases.time("environment boot"):
                provider = providers.provider(self.settings, self.run_id, self.run_dir)
                target = self._stack.enter_context(provider)
        except SigncheckError as err:
            self._boot_error = err
            shared._write(self.run_dir / "target.json", {"error": err.message})
            self.summary.problems.append(f"environment: {err.message}")
            raise
        self._password = target.registry.password
        (self.run_dir / "target.json").write_text(target.to_json())
        return target

    def _await_target(self) -> Target:
        path = self.run_dir / "target.json"
        until(
            path.is_file,
            what=f"the owner process to boot the target ({path})",
            timeout=self.settings.timeouts.target_boot(provisioning=self.settings.provision),
            interval=0.5,
        )
        data = json.loads(path.read_text())
        if "error" in data:
            raise EnvironmentNotReady(f"the target did not boot: {data['error']}")
        return Target.from_json(path.read_text(), self._password)

    # -- session resources ------------------------------------------------------------

    def resources(self) -> RunResources:
        return RunResources(self.target(), self.settings, self.phases)

    def state(self) -> State:
        if self._state is None:
            res = self.resources()
            data = shared.once(
                self.run_dir,
                "resources",
                lambda: res.create(catalogue=self.catalogue),
                self.settings.timeouts.shared_setup,
            )
            self._state = State.from_dict(data)
        return self._state

    # -- end of run (owner only) ------------------------------------------------------

    def finish(self, announce: Any = None) -> None:
        with interrupts.finishing(announce):
            self._finish()
        self.finished = True
        if self._claim is not None:
            self._claim.release()

    def _finish(self) -> None:
        if self._target is not None or (self.run_dir / "target.json").is_file():
            self._teardown()
        if self.reports_enabled:
            self.summary.phases = self.phases.read()
            self.summary.wall_seconds = round(time.monotonic() - self.started, 3)
            self.summary.waiting_seconds = round(waited_seconds() - self.waited_at_start, 3)
            self.summary.reports = {
                "html": str(self.reports_dir / "report.html"),
                "junit": str(self.reports_dir / "junit.xml"),
                "summary": str(self.reports_dir / "summary.json"),
            }
            write_json(self.summary, self.reports_dir / "summary.json")
        if self.summary.teardown.get("clean") is False:
            # Keep the record (target.json) so the next run or `signcheck cleanup` retries.
            return
        if self.settings.keep:
            if self._claim is not None:
                self._claim.mark(claims.FINISHED)
        else:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _teardown(self) -> None:
        started = time.monotonic()
        try:
            target = self._target or self.target()
        except SigncheckError:
            target = None
        if target is not None:
            self.summary.versions.update(target.versions)
            state = shared.read(self.run_dir, "resources")
            if state and "cosign_version" in state:
                self.summary.versions["cosign"] = state["cosign_version"]
            if not target.disposable:
                self.summary.teardown = self._remove_run(target)
        try:
            self._stack.close()
        except Exception as err:
            self.summary.problems.append(f"environment teardown: {err}")
            if target is None or target.disposable:
                self.summary.teardown = {"clean": False, "errors": [str(err)], "leftovers": {}}
        else:
            if target is not None and target.disposable:
                # The run's cluster and registry go with their processes and data: deleting
                # each object first (and waiting out namespace deletion) would only cost time.
                # SEED-08 proves the object-by-object teardown that cluster targets rely on.
                gone = "kept under its run dir (--keep)" if self.settings.keep else "removed"
                self.summary.teardown = {
                    "clean": True,
                    "errors": [],
                    "leftovers": {},
                    "actions": [f"local environment stopped, its data {gone}"],
                }
        self.phases.add("teardown", time.monotonic() - started)

    def _remove_run(self, target: Target) -> dict[str, Any]:
        try:
            res = RunResources(target, self.settings, self.phases)
            removed = removal.remove(res)
            errors = removed.errors
            leftovers = removal.leftovers(res, wait=self.settings.timeouts.namespace_delete)
        except Exception as err:
            msg = f"teardown failed: {type(err).__name__}: {err}"
            self.summary.problems.append(msg)
            return {"clean": False, "errors": [msg], "leftovers": {}}
        if leftovers:
            self.summary.problems.append(f"left behind after teardown: {leftovers}")
        self.summary.problems += [f"teardown: {e}" for e in errors]
        result = {"clean": not leftovers and not errors, "errors": errors, "leftovers": leftovers}
        if removed.actions:
            result["actions"] = removed.actions
        return result


# -- hooks ----------------------------------------------------------------------------

_RUN = pytest.StashKey[SigncheckRun]()


def get_run(config: pytest.Config) -> SigncheckRun:
    return config.stash[_RUN]


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
    config.addinivalue_line(
        "markers",
        "seed_only: uses only the seed's session resources (a run of such tests alone makes "
        "no scenario images, third key or policy variants)",
    )
    run = SigncheckRun(config)
    config.stash[_RUN] = run
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


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(_RUN, None)
    if run is None or not run.is_owner:
        return
    run.restore_sigterm()
    if run._claim is not None and not run.finished:
        # The session never reached its end (an error while configuring or collecting):
        # nothing was booted unless target.json says so; the next run reaps it if it was.
        if not (run.run_dir / "target.json").is_file() and not run.settings.keep:
            shutil.rmtree(run.run_dir, ignore_errors=True)
        run._claim.release()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `late` run after the others (a stable sort keeps every other order): they
    check the outcome of something the run started at setup, such as Kyverno's PolicyReports,
    which appear only after a fixed aggregation delay that the other tests then cover.

    The session resources are made for what was selected: the catalogue's only when a test
    not marked `seed_only` uses them (every xdist worker collects the same items)."""
    items.sort(key=lambda item: item.get_closest_marker("late") is not None)
    run = config.stash.get(_RUN, None)
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
    if run._password:
        node.workerinput["signcheck_registry_password"] = run._password


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
    if report.when == "call" and call.excinfo and call.excinfo.errisinstance(WebhookUnavailable):
        # Kyverno's webhook cannot be called: the run says so and stops, rather than
        # reporting verdicts about signatures it could not observe.
        message = redact.redact(str(call.excinfo.value).splitlines()[0])
        _add_property(item, report, "environment_error", message)
        item.session.shouldfail = f"signcheck: environment error: {message}"
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
    if run._target is None:
        return ""
    try:
        res = run.resources()
        return evidence.collect(
            run._target,
            res.cluster,
            namespace=item.stash.get(NAMESPACE, None),
            policy_name=run._state.policy_name if run._state else None,
            admissions=item.stash.get(ADMISSIONS, []),
            since=item.stash.get(STARTED, time.time() - 60),
        )
    except Exception:
        return redact.redact("evidence collection failed:\n" + traceback.format_exc(limit=3))


class _Collector:
    """Turns test reports into `TestResult`s (one per test id)."""

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
            result = TestResult(report.nodeid, "passed", 0.0)
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
        if report.when == "call":
            if hasattr(report, "wasxfail"):
                result.outcome = "xfailed" if report.skipped else "xpassed"
            else:
                result.outcome = report.outcome
        elif report.failed:
            result.outcome = "error"
        elif report.skipped and report.when == "setup":
            result.outcome = "skipped"
        if report.failed or report.skipped:
            result.message = redact.redact(_short_message(report))
        if "environment_error" in props and report.when == "call":
            result.outcome = "error"
            # Not a verdict on signatures: the registry, the webhook or the cluster failed.
            result.failure = "environment"
            self.run.summary.problems.append(f"environment: {props['environment_error']}")

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
            run.phases.add("tests", max(0.0, window - setup))
        run.summary.tests = list(self.by_id.values())
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        run.finish(announce=tr.write_line if tr is not None else None)
        if run.summary.problems and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        run = self.run
        tr = terminalreporter
        for problem in run.summary.problems:
            if run.boot_error_shown and problem.startswith("environment: "):
                continue  # already the run's one error line (pytest.exit's reason)
            tr.write_line(redact.redact(f"signcheck: {problem}"), red=True)
        if run.reports_enabled:
            tr.write_sep("-", "signcheck reports")
            for name, path in run.summary.reports.items():
                tr.write_line(f"{name:8} {path}")
            if run.summary.phases:
                phases = ", ".join(f"{k} {v:.1f}s" for k, v in run.summary.phases.items())
                tr.write_line(f"phases   {phases}")


def _short_message(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    text = str(report.longrepr or "")
    lines = [ln for ln in text.splitlines() if ln.startswith("E ")]
    return "\n".join(lines[:20]) if lines else text[-2000:]


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    run = get_run(session.config)
    if not run.is_owner:
        return
    session.config.pluginmanager.register(_Collector(run), "signcheck-collector")
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
    try:
        run.target()
    except SigncheckError as err:
        run.boot_error_shown = True
        if err.details:
            tr = session.config.pluginmanager.get_plugin("terminalreporter")
            if tr is not None:
                tr.write_line(redact.redact(err.details))
        code = pytest.ExitCode.USAGE_ERROR if isinstance(err, ConfigError) else 1
        pytest.exit(redact.redact(f"signcheck: {err.message}"), returncode=code)


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_header(cells: list[str]) -> None:
    cells.insert(1, '<th class="sortable" data-column-type="scenario">Scenario</th>')
    cells.insert(2, "<th>Seed step</th>")


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_row(report: pytest.TestReport, cells: list[str]) -> None:
    from html import escape

    props = dict(report.user_properties)
    cells.insert(1, f'<td class="col-scenario">{escape(str(props.get("scenario", "")))}</td>')
    cells.insert(2, f"<td>{escape(str(props.get('seed_step', '')))}</td>")


@pytest.hookimpl(optionalhook=True)
def pytest_html_report_title(report: Any) -> None:
    report.title = "signcheck conformance report"


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_summary(
    prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session
) -> None:
    """The scenario catalogue (with this run's outcomes) and the compatibility results."""
    collector = session.config.pluginmanager.get_plugin("signcheck-collector")
    if not isinstance(collector, _Collector):
        return
    tests = list(collector.by_id.values())
    compat = compatibility_html(tests)
    if compat:
        postfix.append(compat)
    rows = [
        {
            "id": t.scenario,
            "title": t.step,
            "proves": t.proves,
            "expect": t.expect,
            "outcome": t.outcome + (f" ({t.failure})" if t.failure else ""),
        }
        for t in tests
        if t.scenario
    ]
    section = catalogue.render_html(rows)
    if section:
        postfix.append(section)

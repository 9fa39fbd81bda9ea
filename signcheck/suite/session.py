"""One run, seen from one process: its id, directory, target and session resources, and its
end (teardown, summary).

Process roles. The *owner* is the process that is not an xdist worker (the only process of a
serial run, the controller of `-n N`). It owns the run id, the target's lifetime and the
final teardown and summary. Workers receive the run id and run directory from the owner and
create session resources once between them (first worker under a file lock; see
`signcheck.run.shared`). In a serial run the owner boots the target lazily, on the first
fixture that needs it, so `--collect-only` starts nothing.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from signcheck import places, providers, redact
from signcheck.clients.k8s import Cluster
from signcheck.diagnose import posture
from signcheck.errors import EnvironmentNotReady, SigncheckError
from signcheck.report import timeline
from signcheck.report.summary import RunSummary, now_iso, write_json
from signcheck.run import claims, interrupts, removal, shared, staging
from signcheck.run.phases import Phases
from signcheck.run.resources import RunResources, SessionState
from signcheck.suite.options import settings_from
from signcheck.target import RUN_LABEL, Target, new_run_id
from signcheck.tools import gobuild
from signcheck.verdict.model import Finding
from signcheck.wait import until, waited_seconds


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
        self.runs_root = places.suite_runs()
        self.claim: claims.RunClaim | None = None
        if workerinput is not None:
            self.run_id = str(workerinput["signcheck_run_id"])
            self.run_dir = Path(workerinput["signcheck_run_dir"])
            self.registry_password = workerinput.get("signcheck_registry_password")
            self.run_dir.mkdir(parents=True, exist_ok=True)
        else:
            self.run_id = new_run_id()
            # Locked for the life of this process: a later run or `signcheck cleanup` knows
            # from the lock alone whether this run is still alive.
            self.claim = claims.RunClaim.create(
                self.runs_root, self.run_id, target=self.settings.target, keep=self.settings.keep
            )
            self.run_dir = self.claim.run_dir
            self.registry_password = None
        self.phases = Phases(self.run_dir)
        self.judges = not (_is_selftest_run(config) or config.option.collectonly)
        """Whether this run gives a verdict (a run of the plugin's own selftests, or one
        that only collects, does not)."""
        self.reports_enabled = bool(config.getoption("signcheck_reports")) and self.judges
        self.reports_dir = (config.rootpath / self.settings.reports_dir).resolve()
        self.started = time.monotonic()
        self.waited_at_start = waited_seconds()
        self.summary = RunSummary(self.run_id, self.settings.target, now_iso())
        self._stack = contextlib.ExitStack()
        self._target: Target | None = None
        self._boot_error: SigncheckError | None = None
        self.boot_error_shown = False
        self._state: SessionState | None = None
        self.finished = False
        self.catalogue = True
        """Whether the selected tests need the scenarios' resources beyond the seed's."""
        self.needs_resources = False
        """Whether a selected test needs the session resources (set before the boot)."""
        self._stager: staging.Stager | None = None
        self.restore_sigterm: Callable[[], None] = lambda: None
        self._announced: set[str] = set()
        self._decided_exit: int | None = None
        self.posture: list[Finding] = []
        """Findings of the posture checks (owner only), for the verdict."""

    @property
    def booted_target(self) -> Target | None:
        """The target if it has booted in this process (never boots it)."""
        return self._target

    @property
    def policy_name(self) -> str | None:
        """The run's main policy, once the session resources exist in this process."""
        return self._state.policy_name if self._state else None

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
            serial = not self.config.pluginmanager.has_plugin("dsession")
            on_registry = None
            if staging.wanted(self.settings, serial=serial, needs_resources=self.needs_resources):
                self._stager = staging.Stager(self.settings, self.run_id, self.run_dir, self.phases)
                self._stager.catalogue = self.catalogue
                on_registry = self._stager.start
            with self.phases.time("environment boot"):
                provider = providers.provider(self.settings, self.run_id, self.run_dir, on_registry)
                target = self._stack.enter_context(provider)
        except SigncheckError as err:
            self._boot_error = err
            shared.write_json(self.run_dir / "target.json", {"error": err.message})
            self.summary.problems.append(f"environment: {err.message}")
            raise
        self.registry_password = target.registry.password
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
        return Target.from_json(path.read_text(), self.registry_password)

    # -- session resources ------------------------------------------------------------

    def resources(self) -> RunResources:
        return RunResources(self.target(), self.settings, self.phases)

    def state(self) -> SessionState:
        if self._state is None:
            res = self.resources()
            stager = self._stager

            def create() -> dict[str, Any]:
                staged = stager.take(self.catalogue) if stager else None
                return res.create(catalogue=self.catalogue, staged=staged)

            data = shared.once(
                self.run_dir, "resources", create, self.settings.timeouts.shared_setup
            )
            self._state = SessionState.from_dict(data)
        return self._state

    def announce(self, line: str) -> None:
        """One line on the terminal now, once per text (the owner's terminal only: an xdist
        worker's line reaches the user through the verdict at the end)."""
        if line in self._announced:
            return
        self._announced.add(line)
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is None or not self.is_owner:
            return
        # Said from inside a fixture: past pytest's output capture, or it would only show in
        # the test's captured output.
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        hold = capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()
        with hold:
            tr.write_line(redact.redact(f"signcheck: {line}"), red=True, bold=True)

    # -- end of run (owner only) ------------------------------------------------------

    def finish(self, announce: Any = None, exit_code: int | None = None) -> None:
        """Tear down, conclude and write the summary. `exit_code`: one pytest or the boot
        already decided (interrupted, bad input, unusable environment), which the verdict
        then reports instead of its own."""
        self._decided_exit = exit_code
        with interrupts.finishing(announce):
            self._finish()
            if self._stager is not None:
                self._stager.settle(self.settings.timeouts.cosign)
        self.finished = True
        if self.claim is not None:
            self.claim.release()

    def _finish(self) -> None:
        if self._target is not None or (self.run_dir / "target.json").is_file():
            self._teardown()
        canary = shared.read(self.run_dir, "canary")
        if canary and canary.get("diagnosis"):
            self.summary.diagnosis = {**canary["diagnosis"], "namespace": canary["namespace"]}
            self.summary.diagnosis["admissions"] = canary.get("admissions", [])
        self.summary.conclude(self.settings.fail_on, self.posture)
        if self._decided_exit is not None:
            self.summary.verdict["exit_code"] = self._decided_exit
        if self.reports_enabled:
            self.summary.phases = self.phases.read()
            origin = time.time() - (time.monotonic() - self.started)  # the run's wall start
            self.summary.timeline = timeline.read(self.run_dir / "phases.json", origin)
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
            if self.claim is not None:
                self.claim.mark(claims.FINISHED)
        else:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _teardown(self) -> None:
        started, wall = time.monotonic(), time.time()
        try:
            target = self._target or self.target()
        except SigncheckError:
            target = None
        if target is not None:
            self.summary.versions.update(target.versions)
            self.summary.environment = target.environment()
            state = shared.read(self.run_dir, "resources")
            if state and "cosign_version" in state:
                self.summary.versions["cosign"] = state["cosign_version"]
            if self.judges:
                self._posture(target)
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
        self.phases.add("teardown", time.monotonic() - started, (wall, time.time()))

    def _posture(self, target: Target) -> None:
        """The posture checks, while the run's policies (and so Kyverno's pod webhooks) still
        exist: findings for the verdict, facts for the report."""
        try:
            with self.phases.time("posture"):
                cluster = Cluster(target.kubeconfig, target.context)
                self.posture, self.summary.cluster = posture.check(
                    cluster,
                    target.kyverno_namespace,
                    run_namespaces_label=RUN_LABEL,
                    kyverno_version=target.versions.get("kyverno"),
                )
        except Exception as err:  # posture reads never raise; this is the client failing
            self.summary.cluster = {"error": f"posture checks failed: {type(err).__name__}: {err}"}

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


_RUN = pytest.StashKey[SigncheckRun]()


def attach(config: pytest.Config, run: SigncheckRun) -> None:
    config.stash[_RUN] = run


def find_run(config: pytest.Config) -> SigncheckRun | None:
    """The run of this pytest process, if the plugin made one (it has not, before configure)."""
    return config.stash.get(_RUN, None)


def get_run(config: pytest.Config) -> SigncheckRun:
    return config.stash[_RUN]

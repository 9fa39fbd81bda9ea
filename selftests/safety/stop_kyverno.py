"""A pytest plugin for the lockout selftests: kill a service of the environment (the real
Kyverno by default) in the middle of a run.

Loaded into the suite with `-p selftests.safety.stop_kyverno`. Just before the test named by
`SIGNCHECK_STOP_KYVERNO_BEFORE` runs, it SIGKILLs the service named by
`SIGNCHECK_STOP_SERVICE` (default `kyverno`, the admission controller; `registry` makes the
registry unreachable) of the environment: the run's own (local target) or the one in
`SIGNCHECK_STOP_KYVERNO_ENV` (an `env up` directory). `SIGNCHECK_STOP_KYVERNO_AT` says when:
`call` (default: the test's fixtures, hence its namespace, are ready by then) or `setup`
(before its fixtures: the test's namespace is made with the service already dead).
Kyverno's fail-closed webhook configurations stay registered, exactly as after a crash.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from signcheck.localenv.process import is_alive
from signcheck.places import env_runs


def _kill(env_dir: Path, service: str) -> None:
    state = json.loads((env_dir / "state.json").read_text())
    (rec,) = [s for s in state["services"] if s["name"] == service]
    os.kill(rec["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while is_alive(rec["pid"], rec["start_time"]):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{service} pid {rec['pid']} survived SIGKILL")
        time.sleep(0.05)
    (env_dir / f"{service}-stopped").write_text(str(rec["pid"]))


def _stop_if_named(item: pytest.Item, when: str) -> None:
    if item.name != os.environ.get("SIGNCHECK_STOP_KYVERNO_BEFORE"):
        return
    if os.environ.get("SIGNCHECK_STOP_KYVERNO_AT", "call") != when:
        return
    # Imported here: importing the suite's plugin module at load time would keep pytest
    # from rewriting its asserts.
    from signcheck.suite.session import get_run

    env = os.environ.get("SIGNCHECK_STOP_KYVERNO_ENV")
    env_dir = Path(env) if env else env_runs() / get_run(item.config).run_id
    _kill(env_dir, os.environ.get("SIGNCHECK_STOP_SERVICE", "kyverno"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    _stop_if_named(item, "setup")
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    _stop_if_named(item, "call")
    yield

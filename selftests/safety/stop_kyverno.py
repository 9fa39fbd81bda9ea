"""A pytest plugin for the lockout selftest: kill the real Kyverno in the middle of a run.

Loaded into the suite with `-p selftests.safety.stop_kyverno`. Just before the test named by
`SIGNCHECK_STOP_KYVERNO_BEFORE` runs (its fixtures, hence the policy, are ready by then), it
SIGKILLs the Kyverno admission controller of the environment: the run's own (local target)
or the one in `SIGNCHECK_STOP_KYVERNO_ENV` (an `env up` directory). Kyverno's fail-closed
webhook configurations stay registered, exactly as after a crash.
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


def _kill_kyverno(env_dir: Path) -> None:
    state = json.loads((env_dir / "state.json").read_text())
    (rec,) = [s for s in state["services"] if s["name"] == "kyverno"]
    os.kill(rec["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while is_alive(rec["pid"], rec["start_time"]):
        if time.monotonic() > deadline:
            raise RuntimeError(f"kyverno pid {rec['pid']} survived SIGKILL")
        time.sleep(0.05)
    (env_dir / "kyverno-stopped").write_text(str(rec["pid"]))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    if item.name == os.environ.get("SIGNCHECK_STOP_KYVERNO_BEFORE"):
        # Imported here: importing the suite's plugin module at load time would keep pytest
        # from rewriting its asserts.
        from signcheck.suite.session import get_run

        env = os.environ.get("SIGNCHECK_STOP_KYVERNO_ENV")
        _kill_kyverno(Path(env) if env else env_runs() / get_run(item.config).run_id)
    yield

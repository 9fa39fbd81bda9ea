"""Removing runs from another process: `env down`, and the leftovers of crashed runs.

A run is abandoned when nobody holds its owner lock (see `state`). Removing one deletes
Kyverno's webhook configurations while its apiserver still answers (a fail-closed webhook
at a dead port would block every pod), stops its services by pid in reverse start order,
and removes its directory.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from signcheck.errors import EnvironmentNotReady
from signcheck.localenv import kubeapi as kubelib
from signcheck.localenv.process import is_alive, terminate
from signcheck.localenv.realnode import reap_node
from signcheck.localenv.state import (
    LOCK_FILE,
    STATE_FILE,
    EnvState,
    abandoned,
    list_runs,
    remove_run_dir,
    stop_services,
)
from signcheck.timeouts import Timeouts
from signcheck.wait import NotYet, wait_for


def _delete_webhooks(state: EnvState, timeouts: Timeouts) -> list[str]:
    api = [r for r in state.services if r.name == "kube-apiserver"]
    kubeconfig = state.run_dir / "kubeconfigs" / "admin.yaml"
    if not api or not is_alive(api[0].pid, api[0].start_time) or not kubeconfig.is_file():
        return []
    try:
        with kubelib.Kube(kubeconfig, timeout=timeouts.api_call) as kube:
            deleted = kubelib.delete_kyverno_webhooks(kube)
    except Exception as err:
        return [f"could not delete Kyverno's webhook configurations: {err}"]
    return [f"deleted {d}" for d in deleted]


def reap_run(state: EnvState, timeouts: Timeouts, keep: bool = False) -> list[str]:
    """Remove a run whose owner is gone. The caller holds its owner lock."""
    lines = _delete_webhooks(state, timeouts)
    lines += stop_services(state, timeouts.stop)
    # A real node's containers and shims are nobody's recorded pid: found by the run.
    lines += reap_node(state.run_dir)
    if keep:
        state.phase = "down"
        state.save()
    else:
        remove_run_dir(state.run_dir)
        lines.append(f"removed {state.run_dir}")
    return lines


UNBORN_GRACE = 300.0


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def reap_abandoned(root: Path, timeouts: Timeouts, exclude: str | None = None) -> list[str]:
    """Remove every abandoned run under `root`, except runs kept on purpose."""
    lines: list[str] = []
    if not root.is_dir():
        return lines
    runs = {s.run_dir.name: s for s in list_runs(root)}
    for child in sorted(root.iterdir()):
        if child.name == exclude or not child.is_dir():
            continue
        if not (child / LOCK_FILE).exists() and not (child / STATE_FILE).exists():
            continue
        with abandoned(child) as gone:
            if not gone:
                continue
            state = runs.get(child.name)
            if state is None:
                # No state yet: either a run being created this instant (its owner locks
                # before it writes state, but opens the lock file first) or one that crashed
                # before recording anything. Only age tells them apart.
                if _age(child) > UNBORN_GRACE:
                    remove_run_dir(child)
                    lines.append(f"{child.name}: removed {child} (no state)")
                continue
            if state.phase == "down" and state.keep:
                continue
            lines += [f"{state.run_id}: {line}" for line in reap_run(state, timeouts)]
    return lines


def down(
    state: EnvState, timeouts: Timeouts, *, keep: bool = False, force: bool = False
) -> list[str]:
    """Stop one run from any process: ask its owner, or clean up after a dead one."""
    with abandoned(state.run_dir) as gone:
        if gone:
            return reap_run(state, timeouts, keep=keep)
    if state.owner_kind != "supervisor" and not force:
        raise EnvironmentNotReady(
            f"run {state.run_id} belongs to a live process (pid {state.owner_pid}, "
            f"{state.owner_kind}); stop it there, or pass --force"
        )
    if state.owner_kind == "supervisor" and not force:
        return _ask_owner(state, timeouts, keep)
    lines = _delete_webhooks(state, timeouts)
    lines += stop_services(state, timeouts.stop)
    lines.append(terminate(state.owner_pid, state.owner_start_time, timeouts.stop))
    if not keep:
        remove_run_dir(state.run_dir)
    return lines


def _ask_owner(state: EnvState, timeouts: Timeouts, keep: bool) -> list[str]:
    """SIGTERM the supervisor, which tears down in order; finish the job if it cannot."""
    if keep:
        # The supervisor reads --keep from its own start; a later `down --keep` says so here.
        (state.run_dir / "keep").touch()
    os.kill(state.owner_pid, signal.SIGTERM)
    limit = timeouts.stop * 5 + timeouts.api_call

    def released() -> bool:
        if is_alive(state.owner_pid, state.owner_start_time):
            raise NotYet(f"supervisor pid {state.owner_pid} still running")
        return True

    started = time.monotonic()
    try:
        wait_for("the supervisor to tear down", released, timeout=limit, interval=0.05)
    except EnvironmentNotReady:
        terminate(state.owner_pid, state.owner_start_time, timeouts.stop)
    lines = [f"supervisor pid {state.owner_pid} stopped in {time.monotonic() - started:.1f}s"]
    if state.run_dir.is_dir():
        with abandoned(state.run_dir) as gone:
            if gone and (state.run_dir / STATE_FILE).is_file():
                lines += reap_run(EnvState.load(state.run_dir), timeouts, keep=keep)
    return lines

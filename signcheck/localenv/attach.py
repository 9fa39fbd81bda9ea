"""Use an environment another process started (`signcheck env up`) instead of booting one."""

from __future__ import annotations

from pathlib import Path

from signcheck.errors import EnvironmentNotReady
from signcheck.localenv.info import EnvInfo
from signcheck.localenv.settings import runs_root
from signcheck.localenv.state import list_runs


def find_running(run_id: str | None = None, root: Path | None = None) -> EnvInfo:
    """The info of a Ready run whose owner and services are all alive (the newest, unless
    `run_id` names one)."""
    root = root or runs_root()
    seen = []
    for state in reversed(list_runs(root)):
        if run_id is not None and state.run_id != run_id:
            continue
        dead = [rec.name for rec, alive in state.service_status() if not alive]
        seen.append(f"{state.run_id}: phase {state.phase}, dead services: {dead or 'none'}")
        if state.phase == "ready" and state.info and state.owner_alive() and not dead:
            return EnvInfo.from_dict(state.info)
    wanted = f"run {run_id}" if run_id else "a running environment"
    raise EnvironmentNotReady(
        f"found no {wanted} under {root}; start one with `signcheck env up`",
        "\n".join(seen) or "no runs",
    )

"""What every service class shares: a name, its directory in the run dir, its ports, and
the `ManagedProcess` built from its flags and health check."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from signcheck.localenv.process import ManagedProcess, Probe
from signcheck.timeouts import Timeouts

GO_GC_PERCENT = "400"
"""GOGC for the environment's services (all Go programs). Go's default (100) collects each
time the live heap doubles; during a run the API server, Kyverno and the registry spent 10
to 16 % of their CPU in the collector (pprof), on a machine whose two cores are the run's
bottleneck. 400 trades memory, which this machine has, for that CPU (python -m
benchmarks.env_boot reports the peak RSS). A GOGC the user exported is kept."""


def go_runtime_env() -> dict[str, str]:
    return {} if "GOGC" in os.environ else {"GOGC": GO_GC_PERCENT}


class Service:
    """A subclass sets `name`, fills `ports`, and implements `argv()` and `ready()`."""

    name = "service"
    tool = ""
    prefix: tuple[str, ...] = ()
    """argv before the binary: `nsenter ...` for the real node's daemons, which need the
    run's private mount namespace (it execs, so the pid stays the daemon's)."""

    def __init__(self, run_dir: Path, binary: Path, timeouts: Timeouts) -> None:
        self.run_dir = run_dir
        self.binary = binary
        self.timeouts = timeouts
        self.dir = run_dir / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ports: dict[str, int] = {}
        self.process: ManagedProcess | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> Mapping[str, str] | None:
        return None

    def ready(self) -> Probe | None:
        return None

    stop_grace: float | None = None
    """Seconds between SIGTERM and SIGKILL when the environment stops (None: the `stop`
    timeout; 0: SIGKILL at once)."""

    ready_timeout_name = "service_ready"
    """The `Timeouts` field that bounds this service's start."""

    def ready_timeout(self) -> float:
        return float(getattr(self.timeouts, self.ready_timeout_name))

    def prepare(self) -> None:
        """Write config files and certificates before the process starts."""

    def build(self) -> ManagedProcess:
        self.prepare()
        self.process = ManagedProcess(
            self.name,
            [*self.prefix, str(self.binary), *self.argv()],
            log_path=self.run_dir / "logs" / f"{self.name}.log",
            env={**go_runtime_env(), **(self.env() or {})},
            cwd=self.dir,
            ready=self.ready(),
            ready_timeout=self.ready_timeout(),
            ready_timeout_name=self.ready_timeout_name,
            stop_timeout=self.timeouts.stop if self.stop_grace is None else self.stop_grace,
            poll_interval=self.timeouts.poll_interval,
        )
        return self.process

"""Run the conformance suite as a real subprocess, interrupt it, and look at what is left.

Every suite run here gets run directories of its own (`SIGNCHECK_RUN_DIR`: the suite's
records under `suite/`, the local environments under `env/`), so selftests neither see nor
reap anybody else's runs. What is "left" is looked up from the outside, the way a user
would: processes whose command line names the run id, run directories, and (for runs against
a cluster) objects labelled with the run id and repositories under the run's path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selftests.safety import hold
from signcheck.clients.k8s import Cluster
from signcheck.clients.oci import OciClient
from signcheck.kyverno.cpol import Policies
from signcheck.target import RUN_LABEL, Registry

ROOT = Path(__file__).resolve().parents[2]


# Cleanup, interrupts and secrets are properties of the run, not of any one scenario: the
# seed scenarios exercise every kind of resource a run creates, the catalogue adds minutes.
SEED_TESTS = ("tests/test_canary.py", "tests/test_seed.py", "tests/test_teardown.py")


def _default_sigint() -> None:
    # A run started from a background job of a non-interactive shell (CI wrappers, `cmd &`)
    # inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler: the
    # run under test must see Ctrl-C as a user's terminal delivers it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class Dirs:
    """The run directories of one selftest."""

    root: Path

    @classmethod
    def under(cls, base: Path) -> Dirs:
        return cls(base / "runs")

    @property
    def suite(self) -> Path:
        return self.root / "suite"

    @property
    def env(self) -> Path:
        return self.root / "env"

    def environ(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        env.update(SIGNCHECK_RUN_DIR=str(self.root))
        env.update(extra)
        return env


@dataclass
class SuiteRun:
    """One `pytest <seed scenarios> ...` subprocess."""

    dirs: Dirs
    reports: Path
    proc: subprocess.Popen[str]
    out_path: Path
    run_id: str = ""
    returncode: int | None = None

    @classmethod
    def start(
        cls,
        dirs: Dirs,
        reports: Path,
        *args: str,
        env: dict[str, str] | None = None,
        hold_at: str = "",
    ) -> SuiteRun:
        """Start the suite; `hold_at` names a test the run stays inside until `release()`."""
        reports.mkdir(parents=True, exist_ok=True)
        out_path = reports / "terminal.txt"
        argv = [sys.executable, "-m", "pytest", *SEED_TESTS, "-p", "no:cacheprovider", "-rA"]
        argv += ["--signcheck-reports", str(reports), *args]
        env = dict(env or dirs.environ())
        if hold_at:
            argv += ["-p", "selftests.safety.hold"]
            env.update({hold.HOLD_AT: hold_at, hold.HOLD_DIR: str(reports / "hold")})
        out = out_path.open("w")
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            preexec_fn=_default_sigint,
        )
        out.close()
        return cls(dirs, reports, proc, out_path)

    @property
    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def wait_run_id(self, timeout: float = 60) -> str:
        """The run id, once the run has claimed its directory."""

        def claimed() -> str | None:
            if self.dirs.suite.is_dir():
                names = [p.name for p in self.dirs.suite.iterdir() if not p.name.startswith(".")]
                return names[0] if names else None
            return None

        self.run_id = _until(
            claimed, f"the suite run to claim a directory in {self.dirs.suite}", timeout, self
        )
        return self.run_id

    @property
    def run_dir(self) -> Path:
        return self.dirs.suite / self.run_id

    @property
    def env_dir(self) -> Path:
        return self.dirs.env / self.run_id

    def wait_file(self, name: str, timeout: float = 180) -> dict[str, Any]:
        path = self.run_dir / name

        def written() -> dict[str, Any] | None:
            try:
                data: dict[str, Any] = json.loads(path.read_text())
            except (OSError, ValueError):
                return None
            return data

        return _until(written, str(path), timeout, self)

    def wait_namespaces(self, cluster: Cluster, timeout: float = 120) -> list[str]:
        """Mid-run: the session resources exist and a test has created its namespace."""
        return _until(
            lambda: cluster.run_namespaces(self.run_id) or None,
            f"a namespace of run {self.run_id}",
            timeout,
            self,
        )

    def wait_until(self, probe: Any, what: str, timeout: float = 120) -> Any:
        """`probe()` truthy, or fail (early, with the run's output, if the run exits)."""
        return _until(probe, what, timeout, self)

    @property
    def hold_dir(self) -> Path:
        return self.reports / "hold"

    def wait_held(self, timeout: float = 180) -> None:
        """The `hold_at` test has run its body and waits, its fixtures still in place."""
        held = self.hold_dir / "held"
        _until(held.exists, f"the run to hold inside {self.hold_dir}", timeout, self)

    def release(self) -> None:
        self.hold_dir.mkdir(parents=True, exist_ok=True)
        (self.hold_dir / "release").touch()

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 300) -> int:
        self.returncode = self.proc.wait(timeout)
        if not self.run_id and (self.reports / "summary.json").is_file():
            self.run_id = self.summary()["run_id"]
        return self.returncode

    def wait_or_stop(self, timeout: float, why: str) -> int:
        """`wait`, and a run still going after `timeout` is interrupted (Ctrl-C, so it still
        cleans up) and reported as `why`."""
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGINT)
            self.wait(120)
            tail = self.output[-3000:]
            raise AssertionError(f"{why} (still running after {timeout:g}s)\n{tail}") from None

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.reports / "summary.json").read_text())
        return data


def _until(probe: Any, what: str, timeout: float, run: SuiteRun | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        if run is not None and run.proc.poll() is not None:
            raise AssertionError(
                f"the suite exited ({run.proc.returncode}) before {what}:\n{run.output[-3000:]}"
            )
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def processes_naming(text: str) -> list[str]:
    """`pid command` of every live process whose command line contains `text`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state not in ("Z", "X"):
            found.append(f"{proc.name} {cmdline[:200]}")
    return found


def local_leftovers(run: SuiteRun) -> dict[str, Any]:
    """What of a local-target run exists on this machine."""
    assert run.run_id, "the run's id is not known yet"
    found: dict[str, Any] = {}
    if procs := processes_naming(run.run_id):
        found["processes"] = procs
    for name, path in (("suite run dir", run.run_dir), ("environment dir", run.env_dir)):
        if path.exists():
            found[name] = str(path)
    half = [p.name for p in run.dirs.suite.glob(f".{run.run_id}.*")]
    if half:
        found["half-created run dirs"] = half
    # A real node's containers do not name the run: they are found by the run's cgroups.
    cgroups = [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/signcheck-{run.run_id}")]
    if cgroups:
        found["node cgroups"] = cgroups
    return found


def node_processes(run_id: str) -> list[str]:
    """Command names of the processes in a real-node run's pod cgroups (from the outside)."""
    root = Path("/sys/fs/cgroup/pids") / f"signcheck-{run_id}"
    names = []
    for procs in root.rglob("cgroup.procs") if root.is_dir() else []:
        for pid in procs.read_text().split():
            try:
                names.append(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode())
            except OSError:
                continue
    return names


@dataclass
class RemoteView:
    """A cluster and registry that outlive the runs (an `env up` environment)."""

    cluster: Cluster
    registry: Registry
    kubeconfig: Path
    env_dir: Path
    info: dict[str, Any] = field(default_factory=dict)

    def leftovers(self, run_id: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        if namespaces := self.cluster.run_namespaces(run_id):
            found["namespaces"] = namespaces
        if policies := Policies(self.cluster).run_policies(run_id):
            found["policies"] = policies
        client = OciClient(self.registry)
        prefix = f"{self.registry.repository_prefix}/{run_id}/"
        tags = [
            f"{repo}:{tag}"
            for repo in client.catalog() or []
            if repo.startswith(prefix)
            for tag in client.tags(f"{self.registry.host}/{repo}")
        ]
        if tags:
            found["images"] = tags
        secrets = self.cluster.core.list_secret_for_all_namespaces(
            label_selector=f"{RUN_LABEL}={run_id}"
        ).items
        if secrets:
            found["secrets"] = [s.metadata.name for s in secrets if s.metadata]
        return found

    def target_args(self) -> list[str]:
        reg = self.info["registry"]
        args = ["--target", "cluster", "--kubeconfig", str(self.kubeconfig)]
        args += ["--registry", reg["host"], "--registry-scheme", reg["scheme"]]
        if reg.get("auth"):
            args += ["--registry-username", self.registry.username or ""]
        return args


def signcheck_cli(
    dirs: Dirs, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "signcheck", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env or dirs.environ(),
        check=False,
    )

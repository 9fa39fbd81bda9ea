"""Nothing of a run survives it, however it ended: normal end, failed tests, Ctrl-C, kill -9.

Every run of the suite owns a directory `.signcheck/runs/<run id>` and holds an exclusive
lock on its `owner.lock` for as long as it lives. The kernel drops that lock when the process
dies, however it dies, so "can I take the lock?" tells a crashed run from a live one exactly,
and taking it makes the taker the only one cleaning up. The directory keeps what a later
process needs to find the run's resources: `run.json` (target, keep) and, once the target
booted, `target.json` (kubeconfig, context, registry; never a password).

Removing a run (`clean_run`) deletes, by run id: its policies, namespaces, labelled secrets
and Helm releases, the repositories it pushed under `<prefix>/<run id>/`, its local
environment's processes and directory; then its own directory, and only once all of that is
gone, so a cleanup that could not finish (cluster unreachable) is retried later.

Each run removes its stale predecessors when it starts (`reap_stale`); `signcheck cleanup`
does the same on demand.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

from signcheck import redact
from signcheck.clients import oci
from signcheck.clients.k8s import Cluster
from signcheck.errors import ConfigError, SigncheckError
from signcheck.kyverno import install
from signcheck.localenv.state import OwnerLock, abandoned
from signcheck.run.resources import RunResources, repositories
from signcheck.run.shared import Phases
from signcheck.settings.config import Settings
from signcheck.target import RUN_LABEL, Target
from signcheck.tools import helm

RUNS_DIR = Path(".signcheck") / "runs"
META_FILE = "run.json"
TARGET_FILE = "target.json"
FINISHED = "finished"

CLAIM_GRACE = 300.0
"""Seconds after which a half-made claim (`.<run id>.*`, its creator gone) is removed."""


def runs_root(rootpath: Path) -> Path:
    """Where the suite keeps its run directories: `$SIGNCHECK_SUITE_RUN_DIR`, else
    `.signcheck/runs` under pytest's rootdir (the project root)."""
    if env := os.environ.get("SIGNCHECK_SUITE_RUN_DIR"):
        return Path(env)
    return rootpath / RUNS_DIR


class RunClaim:
    """The owner's hold on its run directory, for the whole life of the run."""

    def __init__(self, run_dir: Path, lock: OwnerLock, meta: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self._lock = lock
        self.meta = meta

    @classmethod
    def create(cls, root: Path, run_id: str, **meta: Any) -> RunClaim:
        """Make `<root>/<run id>` already locked: the directory is built under a hidden name
        and renamed once the lock is held, so a reaper never sees it unlocked."""
        root.mkdir(parents=True, exist_ok=True)
        final = root / run_id
        if final.exists():
            raise ConfigError(f"run directory {final} already exists; run ids must be unique")
        tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}.", dir=root))
        lock = OwnerLock(tmp)
        if not lock.acquire():  # pragma: no cover - nobody else knows the fresh name
            raise ConfigError(f"could not lock the new run directory {tmp}")
        data = {"run_id": run_id, "pid": os.getpid(), "started": time.time(), **meta}
        _write_json(tmp / META_FILE, data)
        # The lock belongs to the open file, not the path: it survives the rename.
        tmp.rename(final)
        return cls(final, lock, data)

    def mark(self, phase: str) -> None:
        if self.run_dir.is_dir():
            self.meta["phase"] = phase
            _write_json(self.run_dir / META_FILE, self.meta)

    def release(self) -> None:
        self._lock.release()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# -- finding runs ---------------------------------------------------------------------


@dataclass
class RunInfo:
    run_id: str
    run_dir: Path
    meta: dict[str, Any]
    target: dict[str, Any] | None

    @property
    def target_name(self) -> str:
        if self.target and self.target.get("name"):
            return str(self.target["name"])
        return str(self.meta.get("target", "local"))

    @property
    def kept(self) -> bool:
        """Finished with --keep: its directory stays on purpose until removed by id."""
        return bool(self.meta.get("keep")) and self.meta.get("phase") == FINISHED


def read_run(run_dir: Path) -> RunInfo:
    return RunInfo(
        run_dir.name,
        run_dir,
        _read_json(run_dir / META_FILE) or {},
        _read_json(run_dir / TARGET_FILE),
    )


def is_abandoned(run_dir: Path) -> bool:
    with abandoned(run_dir) as gone:
        return gone


def stale_runs(root: Path, *, include_kept: bool = False) -> list[RunInfo]:
    """Runs under `root` whose owner is gone, oldest first (run ids sort by start)."""
    found: list[RunInfo] = []
    if not root.is_dir():
        return found
    for child in sorted(root.iterdir()):
        if not child.is_dir() or child.name.startswith("."):
            continue
        if is_abandoned(child):
            info = read_run(child)
            if include_kept or not info.kept:
                found.append(info)
    return found


def _half_claims(root: Path) -> list[Path]:
    """Claims whose creator died before the rename (the hidden names of `RunClaim.create`)."""
    if not root.is_dir():
        return []
    old = time.time() - CLAIM_GRACE
    return [
        p
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith(".") and p.stat().st_mtime < old and is_abandoned(p)
    ]


# -- removing a run -------------------------------------------------------------------


@dataclass
class Outcome:
    run_id: str
    actions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    removed: bool = False

    def lines(self) -> list[str]:
        out = [f"{self.run_id}: {a}" for a in self.actions]
        out += [f"{self.run_id}: ERROR {e}" for e in self.errors]
        return [redact.redact(line) for line in out]


def _target(info: RunInfo) -> Target | None:
    if not info.target or "error" in info.target:
        return None
    password = os.environ.get("SIGNCHECK_REGISTRY_PASSWORD") or None
    target = Target.from_json(json.dumps(info.target), password)
    if target.registry.username and not password and target.disposable:
        # A local environment keeps its registry password in its own 0600 file; a crashed
        # run leaves that environment (and the file) behind until the cleanup removes it.
        password = _local_registry_password(target)
        if password:
            redact.register(password)
            target = Target.from_json(json.dumps(info.target), password)
    if target.registry.username and not password and not target.disposable:
        # Passwords are never written to the run directory: the cleanup needs it again
        # (not on the local target, whose registry goes with its environment).
        raise ConfigError(
            f"run {info.run_id} pushed to {target.registry.host} as "
            f"{target.registry.username}: export SIGNCHECK_REGISTRY_PASSWORD to remove its images"
        )
    return target


def _local_registry_password(target: Target) -> str | None:
    env_dir = target.extra.get("env_run_dir") if target.extra else None
    if not env_dir:
        return None
    try:
        state = json.loads((Path(env_dir) / "state.json").read_text())
        path = ((state.get("info") or {}).get("registry") or {}).get("credentials_path")
        if not path:
            return None
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError, AttributeError):
        return None
    value = raw.get("password") if isinstance(raw, dict) else None
    return str(value) if value else None


def _settings_for(target: Target) -> Settings:
    return Settings(
        target="local" if target.disposable else "cluster",
        kyverno_namespace=target.kyverno_namespace,
        registry_prefix=target.registry.repository_prefix,
    )


def run_repositories(client: oci.OciClient, target: Target, run_id: str) -> list[str]:
    """Every repository the run pushed: the ones the suite knows it uses, and whatever the
    registry's catalog (where it has one) lists under a path component naming the run."""
    known = set(repositories(replace(target, run_id=run_id)))
    try:
        names = client.catalog()
    except Exception:  # oras raises more than RegistryError on refused auth
        names = None
    prefix = f"{target.registry.repository_prefix}/"
    for name in names or []:
        parts = name[len(prefix) :].split("/") if name.startswith(prefix) else []
        if parts and (parts[0] == run_id or parts[0].startswith(f"{run_id}-")):
            known.add(f"{target.registry.host}/{name}")
    return sorted(known)


def _helm_releases(cluster: Cluster, run_id: str) -> list[tuple[str, str]]:
    """(release, namespace) of the Helm releases the run installed: `helm install --labels`
    puts the run label on the release's storage secrets."""
    selector = f"owner=helm,{RUN_LABEL}={run_id}"
    found = set()
    for s in cluster.core.list_secret_for_all_namespaces(label_selector=selector).items:
        labels = (s.metadata.labels or {}) if s.metadata else {}
        if labels.get("name") and labels.get("status") != "uninstalled":
            found.add((labels["name"], str(s.metadata.namespace if s.metadata else "")))
    return sorted(found)


def _labelled_secrets(cluster: Cluster, run_id: str) -> list[tuple[str, str]]:
    """The run's own secrets (Helm's release records go with `helm uninstall`)."""
    items = cluster.core.list_secret_for_all_namespaces(
        label_selector=f"{RUN_LABEL}={run_id},owner!=helm"
    ).items
    return sorted((str(s.metadata.namespace), str(s.metadata.name)) for s in items if s.metadata)


def remote_leftovers(target: Target, run_id: str) -> dict[str, list[str]]:
    """What of the run exists in the cluster and the registry, found by its id."""
    res = RunResources(target, _settings_for(target), Phases(target.run_dir))
    found = res.leftovers()
    found.pop("images", None)
    images = []
    for repo in run_repositories(res.registry, target, run_id):
        images += [f"{repo}:{t}" for t in res.registry.tags(repo)]
    if images:
        found["images"] = images
    secrets = [f"{ns}/{name}" for ns, name in _labelled_secrets(res.cluster, run_id)]
    if secrets:
        found["secrets"] = secrets
    releases = [f"{ns}/{name}" for name, ns in _helm_releases(res.cluster, run_id)]
    if releases:
        found["helm releases"] = releases
    return found


def remove_remote(
    target: Target, run_id: str, namespace_wait: float
) -> tuple[list[str], list[str]]:
    """Delete the run's cluster objects and images; (what was done, errors)."""
    res = RunResources(target, _settings_for(target), Phases(target.run_dir))
    found = remote_leftovers(target, run_id)
    actions = [f"deleting {kind}: {', '.join(names)}" for kind, names in found.items()]
    errors: list[str] = []
    # Releases first: their uninstall hooks need the namespaces the teardown deletes.
    for name, ns in _helm_releases(res.cluster, run_id):
        try:
            h = helm.Helm.pinned(target.kubeconfig, target.context)
            install.uninstall(res.cluster, h, install.Release(name, ns, chart=""))
        except SigncheckError as err:
            errors.append(f"helm release {ns}/{name}: {err.message}")
    errors += res.teardown()
    for repo in run_repositories(res.registry, target, run_id):
        try:
            res.registry.delete_repository(repo)
        except SigncheckError as err:
            errors.append(f"images {repo}: {err.message}")
    for ns, name in _labelled_secrets(res.cluster, run_id):
        try:
            res.cluster.core.delete_namespaced_secret(name, ns)
        except Exception as err:
            errors.append(f"secret {ns}/{name}: {err}")
    actions += res.notes
    res.leftovers(wait=namespace_wait)  # waits for the namespaces to go
    left = remote_leftovers(target, run_id)
    if left:
        errors.append(f"still there: {left}")
    return actions, errors


def env_dir_of(run_id: str) -> Path:
    from signcheck.settings.localenv import runs_root as env_runs_root

    return env_runs_root() / run_id


def remove_local_env(run_id: str) -> tuple[list[str], list[str]]:
    """Stop the processes of the run's local environment and remove its directory."""
    from signcheck.localenv.reap import reap_run
    from signcheck.localenv.state import STATE_FILE, RunState, remove_run_dir
    from signcheck.timeouts import Timeouts

    env_dir = env_dir_of(run_id)
    if not env_dir.is_dir():
        return [], []
    with abandoned(env_dir) as gone:
        if not gone:
            return [], [f"its local environment {env_dir} is owned by a live process"]
        if (env_dir / STATE_FILE).is_file():
            lines = reap_run(RunState.load(env_dir), Timeouts.from_env())
        else:
            remove_run_dir(env_dir)
            lines = [f"removed {env_dir}"]
    return [f"local environment: {line}" for line in lines], []


def describe_run(info: RunInfo) -> list[str]:
    """What `clean_run` would remove (for --dry-run)."""
    lines = [f"run dir {info.run_dir} (target {info.target_name})"]
    try:
        target = _target(info)
    except ConfigError as err:
        target = None
        lines.append(err.message)
    if target is not None and not target.disposable:
        try:
            for kind, names in remote_leftovers(target, info.run_id).items():
                lines.append(f"{kind}: {', '.join(names)}")
        except Exception as err:
            lines.append(f"cluster or registry unreachable: {err}")
    env_dir = env_dir_of(info.run_id)
    if env_dir.is_dir():
        lines.append(f"local environment {env_dir}")
        with contextlib.suppress(Exception):
            from signcheck.localenv.state import RunState

            for rec, alive in RunState.load(env_dir).service_status():
                if alive:
                    lines.append(f"  process {rec.name} pid {rec.pid}")
    return [redact.redact(f"{info.run_id}: {line}") for line in lines]


def clean_run(info: RunInfo, *, namespace_wait: float = 90.0) -> Outcome:
    """Remove everything of one run whose owner is gone. Its directory goes last, and only
    when nothing else of the run is left, so an unfinished cleanup is retried later."""
    out = Outcome(info.run_id)
    with abandoned(info.run_dir) as gone:
        if not gone:
            meta = info.meta
            out.errors.append(f"run is still live (pid {meta.get('pid', '?')}); stop it first")
            return out
        try:
            target = _target(info)
        except ConfigError as err:
            out.errors.append(err.message)
            return out
        # On the local target the cluster and registry live inside the environment, which
        # goes as a whole; elsewhere they outlive the run and are cleaned by run id.
        if target is not None and not target.disposable:
            try:
                actions, errors = remove_remote(target, info.run_id, namespace_wait)
            except Exception as err:
                actions, errors = [], [f"cluster or registry: {type(err).__name__}: {err}"]
            out.actions += actions
            out.errors += errors
        actions, errors = remove_local_env(info.run_id)
        out.actions += actions
        out.errors += errors
        if not out.errors:
            shutil.rmtree(info.run_dir, ignore_errors=True)
            out.actions.append(f"removed {info.run_dir}")
            out.removed = True
    return out


def reap_stale(root: Path, *, namespace_wait: float = 90.0) -> list[str]:
    """Remove every run under `root` whose owner died (the start of each run calls this)."""
    lines: list[str] = []
    for info in stale_runs(root):
        lines += clean_run(info, namespace_wait=namespace_wait).lines()
    return lines + reap_half_claims(root)


def reap_half_claims(root: Path) -> list[str]:
    lines = []
    for half in _half_claims(root):
        shutil.rmtree(half, ignore_errors=True)
        lines.append(f"removed half-created run dir {half}")
    return lines


def reap_abandoned_envs(dry_run: bool = False) -> list[str]:
    """Local environments whose owner died, whoever started them (every checkout shares the
    tool cache's run directory)."""
    from signcheck.localenv.reap import reap_abandoned
    from signcheck.localenv.state import list_runs
    from signcheck.settings.localenv import runs_root as env_runs_root
    from signcheck.timeouts import Timeouts

    root = env_runs_root()
    if dry_run:
        return [
            f"{s.run_id}: abandoned local environment {s.run_dir}"
            for s in list_runs(root)
            if not s.owner_alive() and not (s.phase == "down" and s.keep)
        ]
    return reap_abandoned(root, Timeouts.from_env())


# -- interrupts -----------------------------------------------------------------------


@contextlib.contextmanager
def finishing(announce: Any = None) -> Iterator[None]:
    """Let the removal of a run finish through one Ctrl-C: the first SIGINT only says that
    cleanup is under way, a second one interrupts it (the next run removes the rest)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    presses: list[float] = []

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        presses.append(time.monotonic())
        if len(presses) > 1:
            raise KeyboardInterrupt
        if announce is not None:
            announce(
                "signcheck: removing what this run created; Ctrl-C again to abandon it "
                "(the next run or `signcheck cleanup` removes the rest)"
            )

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def sigterm_interrupts() -> Callable[[], None]:
    """Make SIGTERM (CI timeouts, `kill`) end the run like Ctrl-C, so it tears down; the
    default action would kill the process with everything left behind. Returns a function
    that puts the previous handler back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        return lambda: None

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        # Only once: a second SIGTERM during teardown falls back to the default action.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, on_sigterm)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore

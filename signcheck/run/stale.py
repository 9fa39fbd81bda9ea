"""Runs whose owner is gone (crashed, killed, interrupted twice): found, described, removed.

Removing one (`clean_run`) deletes, by run id, what `signcheck.run.removal` removes (and the
run's Helm releases), then its local environment's processes and directory, then its own
record, and only once all of that is gone, so a cleanup that could not finish (cluster
unreachable) is retried later. Each run removes its stale predecessors when it starts
(`reap_stale`); `signcheck cleanup` does the same on demand.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from signcheck import places, redact
from signcheck.errors import ConfigError
from signcheck.localenv.state import abandoned
from signcheck.run import removal
from signcheck.run.claims import RunRecord, reap_half_claims, stale_runs
from signcheck.run.phases import Phases
from signcheck.run.resources import RunResources
from signcheck.settings.config import Settings
from signcheck.target import Target


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


def _target(info: RunRecord) -> Target | None:
    if not info.target or "error" in info.target:
        return None
    password = os.environ.get("SIGNCHECK_REGISTRY_PASSWORD") or None
    target = Target.from_json(json.dumps(info.target), password)
    if target.registry.username and not password and target.disposable:
        # A local environment keeps its registry password in its own 0600 file; a crashed
        # run leaves that environment (and the file) behind until the cleanup removes it.
        password = _local_registry_password(target)
        if password:
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


def _resources(target: Target) -> RunResources:
    return RunResources(target, _settings_for(target), Phases(target.run_dir))


def remote_leftovers(target: Target) -> dict[str, list[str]]:
    """What of the run exists in the cluster and the registry, found by its id."""
    return removal.leftovers(_resources(target), releases=True)


def remove_remote(target: Target, namespace_wait: float) -> tuple[list[str], list[str]]:
    """Delete the run's cluster objects and images; (what was done, errors)."""
    res = _resources(target)
    found = removal.leftovers(res, releases=True)
    actions = [f"deleting {kind}: {', '.join(names)}" for kind, names in found.items()]
    done = removal.remove(res, releases=True)
    left = removal.leftovers(res, wait=namespace_wait, releases=True)
    errors = done.errors + ([f"still there: {left}"] if left else [])
    return actions + done.actions, errors


def env_dir_of(run_id: str) -> Path:
    return places.env_runs() / run_id


def remove_local_env(run_id: str) -> tuple[list[str], list[str]]:
    """Stop the processes of the run's local environment and remove its directory."""
    from signcheck.localenv.reap import reap_run
    from signcheck.localenv.state import STATE_FILE, EnvState, remove_run_dir
    from signcheck.timeouts import Timeouts

    env_dir = env_dir_of(run_id)
    if not env_dir.is_dir():
        return [], []
    with abandoned(env_dir) as gone:
        if not gone:
            return [], [f"its local environment {env_dir} is owned by a live process"]
        if (env_dir / STATE_FILE).is_file():
            lines = reap_run(EnvState.load(env_dir), Timeouts.from_env())
        else:
            remove_run_dir(env_dir)
            lines = [f"removed {env_dir}"]
    return [f"local environment: {line}" for line in lines], []


def describe_run(info: RunRecord) -> list[str]:
    """What `clean_run` would remove (for --dry-run)."""
    lines = [f"run dir {info.run_dir} (target {info.target_name})"]
    try:
        target = _target(info)
    except ConfigError as err:
        target = None
        lines.append(err.message)
    if target is not None and not target.disposable:
        try:
            for kind, names in remote_leftovers(target).items():
                lines.append(f"{kind}: {', '.join(names)}")
        except Exception as err:
            lines.append(f"cluster or registry unreachable: {err}")
    env_dir = env_dir_of(info.run_id)
    if env_dir.is_dir():
        lines.append(f"local environment {env_dir}")
        with contextlib.suppress(Exception):
            from signcheck.localenv.state import EnvState

            for rec, alive in EnvState.load(env_dir).service_status():
                if alive:
                    lines.append(f"  process {rec.name} pid {rec.pid}")
    return [redact.redact(f"{info.run_id}: {line}") for line in lines]


def clean_run(info: RunRecord, *, namespace_wait: float = 90.0) -> Outcome:
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
                actions, errors = remove_remote(target, namespace_wait)
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


def reap_abandoned_envs(dry_run: bool = False) -> list[str]:
    """Local environments whose owner died, whoever started them (every checkout shares the
    tool cache's run directory)."""
    from signcheck.localenv.reap import reap_abandoned
    from signcheck.localenv.state import list_runs
    from signcheck.timeouts import Timeouts

    root = places.env_runs()
    if dry_run:
        return [
            f"{s.run_id}: abandoned local environment {s.run_dir}"
            for s in list_runs(root)
            if not s.owner_alive() and not (s.phase == "down" and s.keep)
        ]
    return reap_abandoned(root, Timeouts.from_env())

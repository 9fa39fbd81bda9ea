"""`signcheck cleanup`: remove what crashed or interrupted runs left behind.

    signcheck cleanup --all-stale [--dry-run]   every run whose process is gone
    signcheck cleanup --run ID [--dry-run]      one run (also a run kept with --keep)

A run is stale when nobody holds its owner lock (see `signcheck.run.cleanup`); a live run is
never touched. Exit status: 0 when nothing of the selected runs is left, 1 when something
could not be removed (it is retried next time), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from signcheck import places
from signcheck.errors import ConfigError
from signcheck.run import claims, stale


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "cleanup",
        help="remove what crashed or interrupted runs left behind",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--run", metavar="ID", help="the run to remove")
    which.add_argument(
        "--all-stale",
        action="store_true",
        help="every run whose process is gone, and abandoned local environments",
    )
    p.add_argument("--dry-run", action="store_true", help="say what would be removed")
    p.add_argument(
        "--forget",
        action="store_true",
        help="with --run: drop the run's record without cleaning (its cluster is gone for good)",
    )
    p.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        help="the suite's run records (default $SIGNCHECK_RUN_DIR/suite, else "
        "~/.cache/signcheck/runs/suite)",
    )
    p.add_argument(
        "--namespace-wait",
        type=float,
        default=90.0,
        help="seconds to wait for deleted namespaces to go (default 90)",
    )
    p.set_defaults(func=cmd_cleanup)


def _print(lines: list[str]) -> None:
    for line in lines:
        print(line)


def cmd_cleanup(args: argparse.Namespace) -> int:
    root = args.runs_dir or places.suite_runs()
    if args.forget and not args.run:
        raise ConfigError("--forget needs --run ID (it drops one run's record)")
    if args.run:
        return _one(root, args)
    if not args.all_stale:
        names = ", ".join(i.run_id for i in claims.stale_runs(root)) or "none"
        raise ConfigError(
            "name what to remove: --run ID, or --all-stale (add --dry-run to look first)",
            f"stale runs under {root}: {names}",
        )
    dead = claims.stale_runs(root)
    if args.dry_run:
        for info in dead:
            _print(stale.describe_run(info))
        _print(stale.reap_abandoned_envs(dry_run=True))
        if not dead:
            print(f"no stale runs under {root}")
        return 0
    failed = False
    for info in dead:
        outcome = stale.clean_run(info, namespace_wait=args.namespace_wait)
        _print(outcome.lines())
        failed |= not outcome.removed
    _print(claims.reap_half_claims(root))
    _print(stale.reap_abandoned_envs())
    if not dead:
        print(f"no stale runs under {root}")
    return 1 if failed else 0


def _one(root: Path, args: argparse.Namespace) -> int:
    run_dir = root / args.run
    if not run_dir.is_dir():
        # No record of it here: its local environment may still be around.
        env_dir = stale.env_dir_of(args.run)
        if args.dry_run and env_dir.is_dir():
            print(f"{args.run}: local environment {env_dir}")
            return 0
        env_actions, env_errors = ([], []) if args.dry_run else stale.remove_local_env(args.run)
        if not env_actions and not env_errors:
            known = ", ".join(p.name for p in sorted(root.glob("*")) if p.is_dir()) or "none"
            raise ConfigError(f"no run {args.run!r} under {root} (runs: {known})")
        _print([f"{args.run}: {line}" for line in env_actions + env_errors])
        return 1 if env_errors else 0
    info = claims.read_run(run_dir)
    if not claims.is_abandoned(run_dir):
        raise ConfigError(
            f"run {args.run} is still running (pid {info.meta.get('pid', '?')}); "
            "stop it first (Ctrl-C lets it clean up after itself)"
        )
    if args.dry_run:
        _print(stale.describe_run(info))
        return 0
    if args.forget:
        shutil.rmtree(run_dir, ignore_errors=True)
        print(f"{args.run}: forgot {run_dir} (nothing else was removed)")
        return 0
    outcome = stale.clean_run(info, namespace_wait=args.namespace_wait)
    _print(outcome.lines())
    if not outcome.removed:
        print(
            f"{args.run}: kept {run_dir} so a later cleanup can retry; --forget drops it",
            file=sys.stderr,
        )
    return 0 if outcome.removed else 1

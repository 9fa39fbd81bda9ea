"""`signcheck fleet`: the suite against several clusters at once, and one report across them.

Each cluster is a whole normal run of the cluster target (`pytest tests --target cluster
--kubeconfig K [--context C]`, or `--profile P` naming everything about one cluster): its own
run id, namespaces and reports under `<reports>/fleet/<cluster>/`; `report.fleet` then puts
their `summary.json` files side by side in `<reports>/fleet.json` and `<reports>/fleet.html`.
A cluster that cannot be reached is its run's verdict (one line), not a stop.
Documented in docs/fleet.md.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from signcheck import redact
from signcheck.cli import children
from signcheck.errors import ConfigError
from signcheck.report import fleet as report_fleet
from signcheck.run import interrupts

PROG = "signcheck fleet"
OWNED_OPTIONS = ("--target", "--kubeconfig", "--context", "--profile", "--signcheck-reports")
"""Set by the fleet for each cluster; given again among the pytest arguments they would clash."""
GENERIC_STEMS = {"config", "kubeconfig", "admin", "profile", "signcheck"}
"""File names that say nothing about their cluster: the directory names it instead."""


@dataclass(frozen=True)
class Member:
    name: str
    args: tuple[str, ...]
    source: str
    """Where the cluster was named ("context prod of ~/.kube/config", "profile a.toml")."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "fleet",
        help="run the suite against several clusters at once and compare them in one report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--kubeconfig",
        action="append",
        default=[],
        metavar="[NAME=]PATH",
        help="a cluster by its kubeconfig (its current context); repeat for more clusters. "
        "With --contexts: the one kubeconfig holding them (default $KUBECONFIG)",
    )
    p.add_argument(
        "--contexts",
        default=None,
        metavar="A,B,C",
        help="clusters by context name, all from one kubeconfig (like kubescape's --kube-contexts)",
    )
    p.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="[NAME=]PATH",
        help="a cluster by a TOML profile of its own (kubeconfig, context, registry, CA...; "
        "`signcheck env up` writes one); repeat for more clusters",
    )
    p.add_argument(
        "--reports",
        type=Path,
        default=Path("reports"),
        help="where fleet.json, fleet.html and fleet/<cluster>/ go (default: reports)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help=f"clusters at once (default: every cluster, at most {_jobs_cap()} here)",
    )
    p.add_argument(
        "pytest_args",
        nargs=argparse.REMAINDER,
        metavar="-- PYTEST_ARGS",
        help="after `--`: arguments for every run (e.g. -- -k SEED --registry HOST)",
    )
    p.set_defaults(func=cmd_fleet)


def _jobs_cap() -> int:
    # A run against a cluster mostly waits on it, but signs and compares on this machine:
    # more runs than cores only makes each slower (and a slow run times out as `environment`).
    return max(2, os.cpu_count() or 1)


def members(kubeconfigs: list[str], contexts: str | None, profiles: list[str]) -> list[Member]:
    """Every cluster named on the command line, each with a unique, path-safe name."""
    out: list[Member] = []
    if contexts is not None:
        if len(kubeconfigs) > 1:
            raise ConfigError(
                "--contexts names contexts of one kubeconfig: give at most one --kubeconfig "
                "with it (or one --kubeconfig per cluster, without --contexts)"
            )
        given_name, path = _named(kubeconfigs[0]) if kubeconfigs else (None, _default_kubeconfig())
        if given_name:
            raise ConfigError("--kubeconfig NAME=PATH with --contexts: the contexts name the runs")
        wanted = list(dict.fromkeys(c.strip() for c in contexts.split(",") if c.strip()))
        if not wanted:
            raise ConfigError(f"--contexts {contexts!r} names no context")
        known = _contexts_of(path)
        missing = [c for c in wanted if c not in known]
        if missing:
            raise ConfigError(
                f"--contexts: {', '.join(missing)} not in {path} (its contexts: "
                f"{', '.join(known) or 'none'})"
            )
        for context in wanted:
            args = ("--target", "cluster", "--kubeconfig", str(path), "--context", context)
            out.append(Member(context, args, f"context {context} of {path}"))
    else:
        for raw in kubeconfigs:
            name, path = _named(raw)
            if not path.is_file():
                raise ConfigError(f"--kubeconfig {path} does not exist")
            args = ("--target", "cluster", "--kubeconfig", str(path))
            out.append(Member(name or _name_of(path), args, f"kubeconfig {path}"))
    for raw in profiles:
        name, path = _named(raw)
        if not path.is_file():
            raise ConfigError(f"--profile {path} does not exist")
        out.append(Member(name or _name_of(path), ("--profile", str(path)), f"profile {path}"))
    if not out:
        raise ConfigError(
            "name the clusters: --kubeconfig PATH (repeat), --contexts A,B,C or --profile PATH"
        )
    return _unique(out)


def _named(raw: str) -> tuple[str | None, Path]:
    name, sep, path = raw.partition("=")
    if sep and name and "/" not in name:
        return _safe(name), Path(path).expanduser()
    return None, Path(raw).expanduser()


def _safe(name: str) -> str:
    # A directory name under reports/ and a column title: nothing a path or a page misreads.
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return cleaned or "cluster"


def _name_of(path: Path) -> str:
    stem = path.stem
    if stem.lower() in GENERIC_STEMS and path.parent.name:
        parent = path.parent
        # .../<run id>/kubeconfigs/admin.yaml names its run, not "kubeconfigs".
        if parent.name in ("kubeconfigs", ".kube") and parent.parent.name:
            parent = parent.parent
        return _safe(parent.name)
    return _safe(stem)


def _unique(found: list[Member]) -> list[Member]:
    seen: dict[str, int] = {}
    out = []
    for member in found:
        count = seen.get(member.name, 0) + 1
        seen[member.name] = count
        name = member.name if count == 1 else f"{member.name}-{count}"
        out.append(Member(name, member.args, member.source))
    return out


def _default_kubeconfig() -> Path:
    first = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(first).expanduser() if first else Path.home() / ".kube" / "config"


def _contexts_of(path: Path) -> list[str]:
    try:
        data: Any = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"kubeconfig {path} does not exist (--kubeconfig or $KUBECONFIG)"
        ) from None
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"kubeconfig {path} is not readable YAML: {err}") from None
    entries = (data or {}).get("contexts") if isinstance(data, dict) else None
    return [str(c["name"]) for c in entries or [] if isinstance(c, dict) and c.get("name")]


def cmd_fleet(args: argparse.Namespace) -> int:
    found = members(args.kubeconfig, args.contexts, args.profile)
    jobs = min(len(found), _jobs_cap()) if args.jobs is None else args.jobs
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs}: at least one run at a time")
    pytest_args = children.pytest_args(
        args.pytest_args,
        OWNED_OPTIONS,
        PROG,
        "name clusters with --kubeconfig, --contexts "
        "or --profile, and the reports directory with --reports",
    )
    if not Path("tests").is_dir():
        raise ConfigError(
            f"run {PROG} from the signcheck checkout (its tests/ directory): "
            f"{Path.cwd()} has no tests/"
        )
    redact.register_env()
    reports: Path = args.reports
    planned = [
        children.Planned(
            label=m.name,
            title=f"cluster {m.name}",
            reports_dir=reports / "fleet" / m.name,
            args=(*m.args, "--signcheck-reports", str(reports / "fleet" / m.name), *pytest_args),
        )
        for m in found
    ]
    print(f"{PROG}: {len(found)} clusters, {jobs} at a time", flush=True)
    restore_sigterm = interrupts.sigterm_interrupts()
    try:
        runs = children.run_all(planned, jobs, PROG)
    finally:
        restore_sigterm()
    sources = {m.name: m.source for m in found}
    fleet = report_fleet.build(runs, sources, reports)
    json_path, html_path = report_fleet.write(fleet, reports)
    for line in report_fleet.terminal_lines(fleet):
        print(f"{PROG}: {line}")
    print(f"{PROG}: {html_path}")
    print(f"{PROG}: {json_path}")
    return 0 if not fleet["unhealthy"] else 1

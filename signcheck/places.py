"""Where signcheck keeps things on this machine, and where it finds the checkout's files.

The cache (`$SIGNCHECK_CACHE`, else `~/.cache/signcheck`) holds the pinned tools and, under
one runs root (`$SIGNCHECK_RUN_DIR`, else `<cache>/runs`), every run's directories: the
suite's record of each run in `suite/<run id>` and each local environment in `env/<run id>`.
One root, whichever checkout or command started the run, so `signcheck cleanup` and
`signcheck env` see every run on the machine.

The checkout's own files (`fixtures/Dockerfile`, `terraform/`: the layout users were
promised) are not in the wheel. They are looked up under `SIGNCHECK_PROJECT_DIR` when set,
else in the current directory and its parents.
"""

from __future__ import annotations

import os
from pathlib import Path

from signcheck.errors import ConfigError


def cache_root() -> Path:
    if env := os.environ.get("SIGNCHECK_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "signcheck"


def runs_root() -> Path:
    if env := os.environ.get("SIGNCHECK_RUN_DIR"):
        return Path(env)
    return cache_root() / "runs"


def suite_runs() -> Path:
    """The suite's run records (claims, target records, keys, shared state)."""
    return runs_root() / "suite"


def env_runs() -> Path:
    """The local environments' run directories (processes' state, data, logs)."""
    return runs_root() / "env"


def checkout_path(relative: str) -> Path:
    """`relative` (e.g. `terraform`) in the project directory, or one error naming the fix."""
    if env := os.environ.get("SIGNCHECK_PROJECT_DIR"):
        roots = [Path(env)]
    else:
        cwd = Path.cwd()
        roots = [cwd, *cwd.parents]
    for root in roots:
        if (root / relative).exists():
            return root / relative
    raise ConfigError(
        f"{relative} not found in {roots[0]} or its parents",
        "run from a signcheck checkout, or set SIGNCHECK_PROJECT_DIR to one",
    )

"""Create-once state shared by every process of one run (pytest-xdist workers and the
controller): a file lock and a JSON file per resource under the run directory.

The first process to take the lock creates the resource and writes its JSON; every later one
reads the JSON. A creation that failed is remembered too, so the other workers fail with the
same error at once instead of each trying (and timing out) again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from filelock import FileLock, Timeout

from signcheck import redact
from signcheck.errors import EnvironmentNotReady, SigncheckError

P = ParamSpec("P")
T = TypeVar("T")


def once(
    run_dir: Path,
    name: str,
    create: Callable[[], dict[str, Any]],
    timeout: float,
) -> dict[str, Any]:
    """The JSON state called `name` of this run, created by `create` if nobody has yet."""
    path = run_dir / f"{name}.json"
    try:
        with FileLock(str(run_dir / f".{name}.lock"), timeout=timeout):
            if path.is_file():
                data: dict[str, Any] = json.loads(path.read_text())
                if "error" in data:
                    raise SigncheckError(
                        f"{name} could not be created (by another worker): {data['error']}",
                        data.get("details", ""),
                    )
                return data
            try:
                data = create()
            except SigncheckError as err:
                write_json(
                    path,
                    {"error": redact.redact(err.message), "details": redact.redact(err.details)},
                )
                raise
            except Exception as err:
                write_json(path, {"error": redact.redact(f"{type(err).__name__}: {err}")})
                raise
            write_json(path, data)
            return data
    except Timeout as err:
        raise EnvironmentNotReady(
            f"timed out after {timeout:g}s waiting for another worker to create {name}",
            f"lock file: {run_dir / f'.{name}.lock'}",
        ) from err


def read(run_dir: Path, name: str) -> dict[str, Any] | None:
    path = run_dir / f"{name}.json"
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(redact.redact_obj(data), indent=2, default=str))
    tmp.replace(path)

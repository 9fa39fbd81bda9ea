"""Fixtures for the local environment's selftests.

Unit tests use bash scripts as the "binaries" and a private cache and runs directory, so
they need no real tool. Integration tests (marked `integration`) boot the real environment
once per session and skip when the pinned tools are not built.
"""

from __future__ import annotations

import os
import stat
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from signcheck.errors import ToolNotFound
from signcheck.localenv import EnvSpec, LocalEnv
from signcheck.localenv.env import resolve_tools


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache and runs dir of this test's own, so nothing touches the user's."""
    monkeypatch.setenv("SIGNCHECK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SIGNCHECK_RUN_DIR", str(tmp_path / "runs"))
    return tmp_path


@pytest.fixture
def fake_binary(tmp_path: Path) -> Callable[[str, str], Path]:
    """`fake_binary(name, bash_body)` -> an executable bash script."""

    def make(name: str, body: str) -> Path:
        path = tmp_path / "bin" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/usr/bin/env bash\n" + textwrap.dedent(body))
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return path

    return make


@pytest.fixture(scope="session")
def local_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnv]:
    """The real environment, booted once for every integration test of the session."""
    try:
        resolve_tools()
    except ToolNotFound as err:
        pytest.skip(f"local environment tools not built: {err.message}")
    runs = Path(os.environ.get("SIGNCHECK_RUN_DIR") or tmp_path_factory.mktemp("runs"))
    with LocalEnv(EnvSpec(runs_root=runs)) as env:
        yield env

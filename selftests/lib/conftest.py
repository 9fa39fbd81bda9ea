"""Selftests: the library's own tests. Unit tests need nothing; tests marked `integration`
start real tools (registry, cosign) on loopback."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from selftests.lib.registry_server import running_registry
from signcheck.target import Registry


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    password = "pw-" + secrets.token_hex(12)
    with running_registry(tmp_path_factory.mktemp("authreg"), "tester", password) as reg:
        yield reg


@pytest.fixture
def run_id() -> str:
    return "t" + secrets.token_hex(4)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path

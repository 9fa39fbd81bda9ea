"""Fixtures for the safety selftests: private run directories, and an `env up` environment
that outlives the suite runs (so a run against it as `--target cluster` can be checked for
what it left in a cluster and registry that are still there afterwards)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from selftests.safety.harness import Dirs, RemoteView, signcheck_cli
from signcheck.clients.k8s import Cluster
from signcheck.errors import ToolNotFound
from signcheck.target import Registry


@pytest.fixture(scope="session")
def _tools_built() -> None:
    from signcheck.localenv.env import resolve_tools

    try:
        resolve_tools()
    except ToolNotFound as err:
        pytest.skip(f"the local environment's tools are not built: {err.message}")


@pytest.fixture
def dirs(tmp_path: Path, _tools_built: None) -> Dirs:
    return Dirs.under(tmp_path)


EnvFactory = Callable[..., RemoteView]


@pytest.fixture
def env_up(tmp_path_factory: pytest.TempPathFactory, _tools_built: None) -> Iterator[EnvFactory]:
    """`env_up(*flags)`: a fresh environment from `signcheck env up`, removed afterwards."""
    started: list[tuple[Dirs, str]] = []

    def start(*flags: str) -> RemoteView:
        d = Dirs.under(tmp_path_factory.mktemp("env-up"))
        proc = signcheck_cli(d, "env", "up", "--json", *flags)
        assert proc.returncode == 0, proc.stderr
        info = json.loads(proc.stdout)
        started.append((d, info["run_id"]))
        reg = info["registry"]
        username = password = None
        if reg.get("credentials_path"):
            creds = json.loads(Path(reg["credentials_path"]).read_text())
            username, password = creds["username"], creds["password"]
        kubeconfig = Path(info["kubeconfig"])
        return RemoteView(
            cluster=Cluster(kubeconfig),
            registry=Registry(
                host=reg["host"],
                scheme=reg["scheme"],
                ca_file=Path(reg["ca_path"]) if reg.get("ca_path") else None,
                username=username,
                password=password,
            ),
            kubeconfig=kubeconfig,
            env_dir=Path(info["run_dir"]),
            info=info,
        )

    yield start
    for d, run_id in started:
        proc = signcheck_cli(d, "env", "down", "--run", run_id)
        assert proc.returncode == 0, proc.stderr

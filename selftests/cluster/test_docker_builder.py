"""`--image-builder docker` against a real Docker-API engine: Podman's API service (Debian's
podman), driven through the Docker SDK, building `fixtures/Dockerfile`
(FROM scratch, so nothing is pulled) and pushing to the cluster's registry.

CI starts the engine and passes it as SIGNCHECK_DOCKER_HOST; without it the test starts a
private one (own storage under the test's directory) when podman is installed, and stops
it by its pid."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from selftests.cluster.conftest import ROOT, ClusterUnderTest
from selftests.cluster.test_bad_input import assert_one_error, closed_port
from signcheck.clients import oci
from signcheck.target import Registry

pytestmark = pytest.mark.integration


def _answering(host: str) -> bool:
    _, _, addr = host.partition("://")
    hostname, _, port = addr.rpartition(":")
    try:
        with socket.create_connection((hostname, int(port)), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def docker_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("docker", reason="the Docker SDK: pip install 'signcheck[docker]'")
    if given := os.environ.get("SIGNCHECK_DOCKER_HOST"):
        yield given
        return
    podman = shutil.which("podman")
    if not podman:
        pytest.skip("no Docker-API engine: set SIGNCHECK_DOCKER_HOST or install podman")
    base = tmp_path_factory.mktemp("podman")
    port = closed_port()
    host = f"tcp://127.0.0.1:{port}"
    log = (base / "service.log").open("wb")
    proc = subprocess.Popen(
        [
            podman,
            "--root",
            str(base / "root"),
            "--runroot",
            str(base / "run"),
            "--storage-driver=vfs",
            "--cgroup-manager=cgroupfs",
            "system",
            "service",
            "--time=0",
            host.replace("tcp://", "tcp:"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "CONTAINERS_REGISTRIES_CONF": str(ROOT / ".ci" / "podman-registries.conf"),
        },
    )
    try:
        deadline = time.monotonic() + 30
        while not _answering(host):
            assert proc.poll() is None, (base / "service.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "podman system service did not listen in 30s"
            time.sleep(0.2)
        yield host
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_builder_builds_the_fixture_dockerfile_and_pushes(
    some_cluster: ClusterUnderTest,
    docker_host: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from signcheck.artefacts.dockerbuild import DockerBuilder

    monkeypatch.setenv("DOCKER_HOST", docker_host)
    host = some_cluster.registry.removeprefix("http://")
    registry = Registry(
        host, "http", username=some_cluster.username, password=some_cluster.password
    )
    repo = registry.repository("selftest-" + os.urandom(3).hex(), "signed")
    pushed = DockerBuilder(registry, tmp_path).push_image(repo, "v1", nonce="n-123")
    client = oci.OciClient(registry)
    try:
        assert client.resolve(repo, "v1") == pushed.digest
        config = json.loads(client.blob(repo, pushed.config_digest))
        labels = config["config"]["Labels"]
        # The Dockerfile's labels (engines add their own, e.g. io.buildah.version).
        assert labels["io.signcheck.image"] == "signed" and labels["io.signcheck.nonce"] == "n-123"
        # A second build of the same role has new content, hence a new digest.
        again = DockerBuilder(registry, tmp_path).push_image(repo, "v2")
        assert again.digest != pushed.digest
    finally:
        client.delete_repository(repo)
    assert client.tags(repo) == []


def test_suite_with_docker_built_images(
    some_cluster: ClusterUnderTest, docker_host: str, tmp_path: Path
) -> None:
    outcome = some_cluster.run(
        tmp_path, "--image-builder", "docker", env={"DOCKER_HOST": docker_host}
    )
    assert outcome.returncode == 0, outcome.output[-4000:]
    outcome.assert_green()
    assert outcome.summary is not None and outcome.summary["teardown"]["clean"] is True


def test_no_engine_is_one_error(
    some_cluster: ClusterUnderTest, docker_host: str, tmp_path: Path
) -> None:
    host = f"tcp://127.0.0.1:{closed_port()}"
    outcome = some_cluster.run(tmp_path, "--image-builder", "docker", env={"DOCKER_HOST": host})
    assert_one_error(outcome, f"no Docker-API engine answers at {host}", "DOCKER_HOST")

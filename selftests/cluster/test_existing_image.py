"""`--image REF`: a user's existing image is copied into the run's repositories, signed and
admitted there, and the user's own image is left exactly as it was (no signature added,
not deleted)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from selftests.cluster.conftest import ClusterUnderTest
from selftests.cluster.test_bad_input import assert_one_error
from signcheck.clients import oci
from signcheck.target import Registry

pytestmark = pytest.mark.integration


def test_existing_image_is_copied_not_touched(
    some_cluster: ClusterUnderTest, tmp_path: Path
) -> None:
    host = some_cluster.registry.removeprefix("http://")
    registry = Registry(
        host, "http", username=some_cluster.username, password=some_cluster.password
    )
    client = oci.OciClient(registry)
    repo = f"{host}/team/app-{secrets.token_hex(3)}"
    source = client.push_image(repo, "1.0")
    try:
        outcome = some_cluster.run(tmp_path, "--image", source.by_tag)
        assert outcome.returncode == 0, outcome.output[-4000:]
        outcome.assert_green()
        assert client.tags(repo) == ["1.0"], "the user's repository gained or lost tags"
        assert client.resolve(repo, "1.0") == source.digest
    finally:
        client.delete_repository(repo)


def test_existing_image_on_another_registry(some_cluster: ClusterUnderTest, tmp_path: Path) -> None:
    outcome = some_cluster.run(tmp_path, "--image", "cr.example/team/app:1.0")
    assert_one_error(outcome, "--image cr.example/team/app:1.0 is not in --registry")


def test_existing_image_missing(some_cluster: ClusterUnderTest, tmp_path: Path) -> None:
    host = some_cluster.registry.removeprefix("http://")
    ref = f"{host}/team/absent:9.9"
    outcome = some_cluster.run(tmp_path, "--image", ref)
    assert_one_error(outcome, f"--image {ref} does not exist in the registry")

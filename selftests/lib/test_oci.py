"""oci.py against a real registry: push, resolve, list, read, delete; auth; failure paths."""

from __future__ import annotations

import json

import pytest

from signcheck.clients import oci, ociimage
from signcheck.target import Registry

pytestmark = pytest.mark.integration


def test_push_resolve_and_read_back(registry: Registry, run_id: str) -> None:
    client = oci.OciClient(registry)
    client.ping()
    repo = registry.repository(run_id, "app")
    img = client.push_image(repo, run_id)
    assert img.digest.startswith("sha256:")
    assert client.resolve(repo, run_id) == img.digest
    raw, media_type, digest = client.manifest(repo, img.digest)
    assert digest == img.digest and media_type == ociimage.MANIFEST_OCI
    manifest = json.loads(raw)
    assert manifest["config"]["mediaType"] == ociimage.CONFIG_OCI
    config = json.loads(client.blob(repo, manifest["config"]["digest"]))
    assert config["os"] == "linux" and config["rootfs"]["diff_ids"]
    assert client.tags(repo) == [run_id]


def test_every_push_is_unique(registry: Registry, run_id: str) -> None:
    client = oci.OciClient(registry)
    a = client.push_image(registry.repository(run_id, "same"), "a")
    b = client.push_image(registry.repository(run_id, "same"), "b")
    assert a.digest != b.digest and a.layer_digest != b.layer_digest


def test_delete_is_idempotent(registry: Registry, run_id: str) -> None:
    client = oci.OciClient(registry)
    repo = registry.repository(run_id, "gone")
    img = client.push_image(repo, "v1")
    assert client.delete(repo, img.digest) is True
    assert client.resolve(repo, "v1") is None
    assert client.delete(repo, img.digest) is False
    assert client.delete(repo, "no-such-tag") is False


def test_unknown_repository_has_no_tags(registry: Registry, run_id: str) -> None:
    assert oci.OciClient(registry).tags(registry.repository(run_id, "never")) == []


def test_basic_auth(auth_registry: Registry, run_id: str) -> None:
    client = oci.OciClient(auth_registry)
    client.ping()
    img = client.push_image(auth_registry.repository(run_id, "private"), "v1")
    assert client.resolve(auth_registry.repository(run_id, "private"), "v1") == img.digest


def test_wrong_credentials_is_one_clear_error(auth_registry: Registry) -> None:
    bad = Registry(auth_registry.host, "http", username="tester", password="wrong-password")
    with pytest.raises(oci.RegistryError, match="rejected the credentials"):
        oci.OciClient(bad).ping()


def test_missing_credentials_is_one_clear_error(auth_registry: Registry) -> None:
    anon = Registry(auth_registry.host, "http")
    with pytest.raises(oci.RegistryError, match="requires credentials"):
        oci.OciClient(anon).ping()


def test_unreachable_registry_fails_fast() -> None:
    from selftests.lib.registry_server import free_port

    dead = Registry(f"127.0.0.1:{free_port()}", "http")
    with pytest.raises(oci.RegistryError, match="unreachable"):
        oci.OciClient(dead).ping(timeout=2)

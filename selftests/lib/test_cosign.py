"""cosign.py with the real pinned cosign against a real registry: keys, sign, the `.sig`
artefact, verify outcomes (ok / no signatures / no matching signatures), no secret leaks."""

from __future__ import annotations

from pathlib import Path

import pytest

from signcheck import redact
from signcheck.clients import oci
from signcheck.target import Registry
from signcheck.tools.cosign import Cosign

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cosign(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Cosign:
    return Cosign.from_tools(registry, tmp_path_factory.mktemp("cosign"))


def test_sign_verify_and_the_sig_artefact(
    cosign: Cosign, registry: Registry, tmp_path: Path
) -> None:
    client = oci.OciClient(registry)
    repo = registry.repository("cosign", "signed")
    img = client.push_image(repo, "v1")
    key = cosign.generate_key_pair(tmp_path / "k")
    assert key.private_key.stat().st_mode & 0o077 == 0
    result = cosign.sign(key, img.by_digest)
    assert key.password not in " ".join(result.argv) + result.stdout + result.stderr

    assert img.signature_tag in client.tags(repo)
    sig = client.signature(repo, img.digest)
    assert sig is not None and len(sig.signatures) == 1
    assert sig.signatures[0].signed_digest == img.digest
    assert sig.signatures[0].identity == repo
    assert sig.signatures[0].signature

    ok = cosign.verify(key.public_key, img.by_tag)
    assert ok.outcome == "verified" and ok.digests == [img.digest]


def test_unsigned_is_no_signatures(cosign: Cosign, registry: Registry, tmp_path: Path) -> None:
    img = oci.OciClient(registry).push_image(registry.repository("cosign", "unsigned"), "v1")
    key = cosign.generate_key_pair(tmp_path / "k")
    res = cosign.verify(key.public_key, img.by_tag)
    assert res.outcome == "no_signatures", res.result.stderr
    assert res.result.returncode == 10
    assert "no signatures found" in res.result.error


def test_other_key_is_no_matching_signatures(
    cosign: Cosign, registry: Registry, tmp_path: Path
) -> None:
    img = oci.OciClient(registry).push_image(registry.repository("cosign", "other"), "v1")
    signer = cosign.generate_key_pair(tmp_path / "a")
    stranger = cosign.generate_key_pair(tmp_path / "b")
    cosign.sign(signer, img.by_digest)
    res = cosign.verify(stranger.public_key, img.by_tag)
    assert res.outcome == "no_matching_signatures", res.result.stderr
    assert res.result.returncode == 12


def test_refuses_to_sign_a_tag(cosign: Cosign, tmp_path: Path) -> None:
    key = cosign.generate_key_pair(tmp_path / "k")
    with pytest.raises(ValueError, match="by digest"):
        cosign.sign(key, "127.0.0.1:1/x:latest")


def test_passwords_are_registered_for_redaction(cosign: Cosign, tmp_path: Path) -> None:
    key = cosign.generate_key_pair(tmp_path / "k")
    assert key.password in redact.known()
    assert key.password not in repr(key)


def test_private_registry_through_docker_config(auth_registry: Registry, tmp_path: Path) -> None:
    cosign = Cosign.from_tools(auth_registry, tmp_path / "c")
    img = oci.OciClient(auth_registry).push_image(auth_registry.repository("c", "p"), "v1")
    key = cosign.generate_key_pair(tmp_path / "k")
    result = cosign.sign(key, img.by_digest)
    assert auth_registry.password not in " ".join(result.argv)
    assert cosign.verify(key.public_key, img.by_digest).ok

"""The registry attacks (signcheck.artefacts.forge) against a real registry, checked with
cosign itself: each forged state must look the way the attack intends and fail verification
the way cosign says it does, independently of Kyverno."""

from __future__ import annotations

from pathlib import Path

import pytest

from signcheck.artefacts import forge
from signcheck.clients import oci
from signcheck.target import Registry
from signcheck.tools.cosign import Cosign

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cosign(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Cosign:
    return Cosign.from_tools(registry, tmp_path_factory.mktemp("cosign"))


def test_forged_states_fail_verification(
    cosign: Cosign, registry: Registry, tmp_path: Path
) -> None:
    client = oci.OciClient(registry)
    key = cosign.generate_key_pair(tmp_path / "k")
    signed = client.push_image(registry.repository("forge", "signed"), "v1")
    repoint = client.push_image(registry.repository("forge", "repoint"), "v1")
    victim = client.push_image(registry.repository("forge", "victim"), "v1")
    tamper = client.push_image(registry.repository("forge", "tamper"), "v1")
    # One cosign process for three images.
    cosign.sign_all(key, [signed.by_digest, repoint.by_digest, tamper.by_digest])
    for img in (signed, repoint, tamper):
        assert cosign.verify(key.public_key, img.by_digest).ok

    moved = forge.repoint_tag(client, repoint)
    assert client.resolve(repoint.repository, repoint.tag) == moved.digest != repoint.digest
    assert cosign.verify(key.public_key, repoint.by_tag).outcome == "no_signatures"
    assert cosign.verify(key.public_key, repoint.by_digest).ok

    forge.copy_signature(client, signed, victim)
    copied = client.signature(victim.repository, victim.digest)
    assert copied is not None and copied.signatures[0].signed_digest == signed.digest
    res = cosign.verify(key.public_key, victim.by_tag)
    assert res.outcome == "no_matching_signatures"
    assert "invalid or missing digest in claim" in res.result.error

    payload = forge.tamper_signature(
        client, tamper, lambda p: p.update(optional={"signcheck.io/tampered": "1"})
    )
    stored = client.signature(tamper.repository, tamper.digest)
    assert stored is not None and stored.signatures[0].payload == payload
    res = cosign.verify(key.public_key, tamper.by_tag)
    assert res.outcome == "no_matching_signatures"
    assert "invalid signature" in res.result.error

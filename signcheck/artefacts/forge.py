"""Supply-chain attacks on the registry, done the way an attacker with push rights would:
through the OCI distribution API only, with no signing key.

- `repoint_tag`: push different content under a tag that was signed (the signature names the
  old digest; the tag now names a new one);
- `copy_signature`: copy image A's `sha256-<A>.sig` manifest and its blobs to image B's
  signature tag, so B appears to carry A's valid signature;
- `tamper_signature`: rewrite the simple-signing payload of an image's signature, keeping
  the signature itself (so it no longer matches what it signs);
- `tamper_attestation`: rewrite the in-toto statement inside an attestation's DSSE envelope,
  keeping the envelope's signature (a failing scan turned into a passing one).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from typing import Any

from signcheck.clients.oci import OciClient, PushedImage, signature_tag


def repoint_tag(client: OciClient, image: PushedImage) -> PushedImage:
    """New, never-signed content under `image`'s tag; returns what the tag names now."""
    moved = client.push_image(
        image.repository, image.tag, nonce="repointed-" + secrets.token_hex(8)
    )
    if moved.digest == image.digest:
        raise AssertionError(f"re-pointing {image.by_tag} did not change its digest")
    return moved


def _copy_manifest_with_blobs(
    client: OciClient, source_repo: str, reference: str, target_repo: str, target_ref: str
) -> str:
    raw, media_type, _ = client.manifest(source_repo, reference)
    manifest = json.loads(raw)
    for desc in [manifest["config"], *manifest.get("layers", [])]:
        if source_repo != target_repo:
            client.push_blob(
                target_repo, desc["mediaType"], client.blob(source_repo, desc["digest"])
            )
    # The exact bytes: the copy is byte-for-byte the signed artefact, only its tag differs.
    return client.put_manifest(target_repo, target_ref, raw, media_type)


def copy_signature(client: OciClient, source: PushedImage, target: PushedImage) -> str:
    """Store `source`'s signature manifest as `target`'s (`sha256-<target digest>.sig`);
    returns the digest of the manifest now at that tag."""
    if client.signature(source.repository, source.digest) is None:
        raise AssertionError(f"{source.by_digest} has no signature to copy")
    return _copy_manifest_with_blobs(
        client,
        source.repository,
        signature_tag(source.digest),
        target.repository,
        signature_tag(target.digest),
    )


def _rewrite_first_layer(
    client: OciClient, repository: str, tag: str, rewrite: Callable[[bytes], bytes]
) -> None:
    """Replace the first layer of the manifest at `tag` with `rewrite(layer)`, as a push
    with no key can: a new blob, the manifest pointing at it, stored at the same tag."""
    raw, media_type, _ = client.manifest(repository, tag)
    manifest = json.loads(raw)
    layer = manifest["layers"][0]
    data = rewrite(client.blob(repository, layer["digest"]))
    blob = client.push_blob(repository, layer["mediaType"], data)
    layer["digest"], layer["size"] = blob.digest, len(data)
    client.put_manifest(
        repository, tag, json.dumps(manifest, separators=(",", ":")).encode(), media_type
    )


def tamper_signature(
    client: OciClient, image: PushedImage, edit: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Rewrite the payload of `image`'s signature with `edit`, keep the signature annotation
    and store the result at the same tag. Returns the tampered payload."""
    edited: dict[str, Any] = {}

    def rewrite(blob: bytes) -> bytes:
        edited.update(json.loads(blob))
        edit(edited)
        return json.dumps(edited, separators=(",", ":")).encode()

    _rewrite_first_layer(client, image.repository, signature_tag(image.digest), rewrite)
    return edited


def attestation_tag(digest: str) -> str:
    """cosign's legacy tag for an image's attestations: `sha256-<hex>.att`."""
    return signature_tag(digest).removesuffix(".sig") + ".att"


def tamper_attestation(
    client: OciClient, image: PushedImage, edit: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Rewrite the statement of `image`'s (first) attestation with `edit`, keep the DSSE
    envelope's signature, and store the result at the same tag. Returns the tampered
    statement."""
    edited: dict[str, Any] = {}

    def rewrite(blob: bytes) -> bytes:
        envelope = json.loads(blob)
        edited.update(json.loads(base64.b64decode(envelope["payload"])))
        edit(edited)
        statement = json.dumps(edited, separators=(",", ":")).encode()
        envelope["payload"] = base64.b64encode(statement).decode()
        return json.dumps(envelope, separators=(",", ":")).encode()

    _rewrite_first_layer(client, image.repository, attestation_tag(image.digest), rewrite)
    return edited


def attestation_statement(client: OciClient, image: PushedImage) -> dict[str, Any]:
    """The in-toto statement of `image`'s (first) attestation, as stored."""
    raw, _, _ = client.manifest(image.repository, attestation_tag(image.digest))
    layer = json.loads(raw)["layers"][0]
    envelope = json.loads(client.blob(image.repository, layer["digest"]))
    statement: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return statement

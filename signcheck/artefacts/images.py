"""Where a run's test images come from: built and pushed without a daemon (default), built
by a Docker engine (`--image-builder docker`), or copied from an image the user already has
(`--image REF`, for clusters whose nodes must really run the pods).

A user's image is never signed or deleted in place: it is copied into the run's own
repositories (`<prefix>/<run id>/<role>:<run id>`), which the run signs and removes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from signcheck.clients import oci, ociimage
from signcheck.errors import ConfigError
from signcheck.settings.config import Settings
from signcheck.target import Registry

Pusher = Callable[[str, str], oci.PushedImage]


def split_reference(ref: str) -> tuple[str, str]:
    """(repository, tag or digest) of `host/path:tag` or `host/path@sha256:...`."""
    if "@" in ref:
        repo, _, digest = ref.partition("@")
        return repo, digest
    last = ref.rsplit("/", 1)
    if len(last) == 2 and ":" in last[1]:
        repo, _, tag = ref.rpartition(":")
        return repo, tag
    return ref, "latest"


def copy_image(client: oci.OciClient, source: str, repository: str, tag: str) -> oci.PushedImage:
    """Copy manifest(s) and blobs of `source` (same registry) to `repository:tag`."""
    src_repo, src_ref = split_reference(source)
    raw, media_type, digest = client.manifest(src_repo, src_ref)
    manifest = json.loads(raw)
    children = manifest.get("manifests") or []
    for child in children:
        child_raw, child_type, _ = client.manifest(src_repo, child["digest"])
        _copy_blobs(client, src_repo, repository, json.loads(child_raw))
        client.put_manifest(repository, child["digest"], child_raw, child_type)
    if not children:
        _copy_blobs(client, src_repo, repository, manifest)
    client.put_manifest(repository, tag, raw, media_type or ociimage.MANIFEST_OCI)
    first = manifest
    if children:
        first = json.loads(client.manifest(src_repo, children[0]["digest"])[0])
    layers = first.get("layers") or [{}]
    return oci.PushedImage(
        repository,
        tag,
        digest,
        str(first.get("config", {}).get("digest", "")),
        str(layers[-1].get("digest", "")),
    )


def _copy_blobs(client: oci.OciClient, src: str, dest: str, manifest: dict[str, object]) -> None:
    descriptors = [manifest.get("config"), *(manifest.get("layers") or [])]  # type: ignore[misc]
    for desc in descriptors:
        if isinstance(desc, dict) and desc.get("digest"):
            data = client.blob(src, str(desc["digest"]))
            client.push_blob(dest, str(desc.get("mediaType", "")), data)


def pusher(
    settings: Settings, registry: Registry, workdir: Path, program: bytes | None = None
) -> Pusher:
    client = oci.OciClient(registry, program)
    if settings.image:
        source = settings.image
        host = source.split("/", 1)[0]
        if host != registry.host:
            raise ConfigError(
                f"--image {source} is not in --registry {registry.host}: give an image of "
                "that registry (the run copies it into its own repositories)"
            )
        return lambda repository, tag: copy_image(client, source, repository, tag)
    if settings.image_builder == "docker":
        from signcheck.artefacts.dockerbuild import DockerBuilder

        return DockerBuilder(registry, workdir).push_image
    return client.push_image

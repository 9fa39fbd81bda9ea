"""Multi-platform images: OCI image indexes pushed through the registry API, each child a test
image of its own platform, signed at the index or at the children.

What a tag of a multi-platform image names is an index; what a node pulls is the child for
its own platform, which the index lists by digest. The IDX scenarios push:

| role | platforms | signed |
|---|---|---|
| `idx-index-signed` | linux/amd64, linux/arm64 | the index only (no `--recursive`) |
| `idx-children-signed` | linux/amd64, linux/arm64 | each child only, not the index |
| `idx-amd64-only` | linux/amd64 | the index |
| `idx-arm64-only` | linux/arm64 | the index |

Each index and each child is an entry of the scenarios' images (`Scenarios.images`): the
index under its role, a child under `<role>.<os>-<arch>`. Each child is also tagged
`<tag>-<os>-<arch>`, so the run's removal, which follows tags, deletes it too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from signcheck.clients import oci
from signcheck.clients.ociimage import INDEX_OCI, MANIFEST_OCI, Blob, build_image, manifest_for


@dataclass(frozen=True)
class IndexSpec:
    role: str
    platforms: tuple[str, ...]
    """`os/arch` of each child, in index order."""
    signed_at: str
    """`index` or `children`."""


INDEXES: tuple[IndexSpec, ...] = (
    IndexSpec("idx-index-signed", ("linux/amd64", "linux/arm64"), "index"),
    IndexSpec("idx-children-signed", ("linux/amd64", "linux/arm64"), "children"),
    IndexSpec("idx-amd64-only", ("linux/amd64",), "index"),
    IndexSpec("idx-arm64-only", ("linux/arm64",), "index"),
)
BY_ROLE = {spec.role: spec for spec in INDEXES}

REPOSITORIES: tuple[str, ...] = tuple(spec.role for spec in INDEXES)
"""One repository per index (its children live beside it, as a registry stores them)."""


def child_key(role: str, platform: str) -> str:
    """The key of an index's child among the scenarios' images: `<role>.<os>-<arch>`."""
    return f"{role}.{platform.replace('/', '-')}"


SIGNED: tuple[str, ...] = tuple(
    key
    for spec in INDEXES
    for key in (
        (spec.role,)
        if spec.signed_at == "index"
        else tuple(child_key(spec.role, p) for p in spec.platforms)
    )
)
"""The image keys signed with the run's main key: the index itself, or each child."""


def _child(
    client: oci.OciClient, repository: str, tag: str, platform: str
) -> tuple[oci.PushedImage, dict[str, Any]]:
    """Push one platform's image (its config names that platform); returns it and its
    descriptor for the index."""
    os_name, arch = platform.split("/", 1)
    name = f"{repository.rsplit('/', 1)[-1]}-{os_name}-{arch}"
    config, layer, _, layers = build_image(name, None, client.program)
    doc = json.loads(config.data)
    doc["os"], doc["architecture"] = os_name, arch
    config = Blob(config.media_type, json.dumps(doc, sort_keys=True).encode())
    for blob in (*layers, config):
        client.push_blob(repository, blob.media_type, blob.data)
    raw = json.dumps(manifest_for(config, layers), separators=(",", ":")).encode()
    child_tag = f"{tag}-{os_name}-{arch}"
    digest = client.put_manifest(repository, child_tag, raw, MANIFEST_OCI)
    descriptor = {
        "mediaType": MANIFEST_OCI,
        "digest": digest,
        "size": len(raw),
        "platform": {"architecture": arch, "os": os_name},
    }
    image = oci.PushedImage(repository, child_tag, digest, config.digest, layer.digest)
    return image, descriptor


def push_index(
    client: oci.OciClient, spec: IndexSpec, repository: str, tag: str
) -> dict[str, oci.PushedImage]:
    """Push `spec`'s children, then its index under `tag`: the index by `spec.role`, each
    child by `child_key`."""
    pushed: dict[str, oci.PushedImage] = {}
    descriptors = []
    for platform in spec.platforms:
        image, descriptor = _child(client, repository, tag, platform)
        pushed[child_key(spec.role, platform)] = image
        descriptors.append(descriptor)
    index = {"schemaVersion": 2, "mediaType": INDEX_OCI, "manifests": descriptors}
    raw = json.dumps(index, separators=(",", ":")).encode()
    digest = client.put_manifest(repository, tag, raw, INDEX_OCI)
    # An index has no config or layer of its own: its children's are theirs.
    pushed[spec.role] = oci.PushedImage(repository, tag, digest, "", "")
    return pushed


def push_all(
    client: oci.OciClient, repository_of: Callable[[str], str], tag: str
) -> dict[str, oci.PushedImage]:
    """Every index of `INDEXES` (`repository_of(role)` names its repository)."""
    pushed: dict[str, oci.PushedImage] = {}
    for spec in INDEXES:
        pushed.update(push_index(client, spec, repository_of(spec.role), tag))
    return pushed


@dataclass(frozen=True)
class Pulled:
    """What a node of one platform pulls for an index reference."""

    index_digest: str
    platforms: dict[str, str]
    """`os/arch` -> child digest, as the stored index lists them."""

    def child_for(self, platform: str) -> str | None:
        return self.platforms.get(platform)


def read_index(client: oci.OciClient, repository: str, digest: str) -> Pulled:
    """The index stored at `digest` (its bytes checked against the digest), as a node reads
    it to choose its platform's child."""
    raw, media_type, got = client.manifest(repository, digest)
    if got != digest:
        raise AssertionError(f"{repository}@{digest}: the registry served {got}")
    doc = json.loads(raw)
    if doc.get("mediaType", media_type) != INDEX_OCI:
        raise AssertionError(f"{repository}@{digest} is not an image index: {media_type}")
    platforms = {
        f"{m['platform']['os']}/{m['platform']['architecture']}": str(m["digest"])
        for m in doc.get("manifests") or []
        if m.get("platform")
    }
    return Pulled(digest, platforms)

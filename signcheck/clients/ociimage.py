"""The OCI image format as the suite writes it: media types, blobs, and the test image.

Every image is a runnable-looking OCI image (image manifest, image config, one gzip'd tar
layer) whose layer holds content unique to the run and the image, so tags and digests are
new every run and no verification cache (Kyverno's is keyed by tag) can hide a result.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import secrets
import tarfile
from dataclasses import dataclass
from typing import Any

MANIFEST_OCI = "application/vnd.oci.image.manifest.v1+json"
MANIFEST_DOCKER = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_OCI = "application/vnd.oci.image.index.v1+json"
CONFIG_OCI = "application/vnd.oci.image.config.v1+json"
LAYER_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PROGRAM = "signcheck-app"


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}


def tar_layer(files: dict[str, bytes]) -> tuple[Blob, str]:
    """A gzip'd tar layer of `files` (path -> content, all 0755, parent directories made)
    and its diff_id; the same files always give the same bytes (mtime 0 throughout)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirname in sorted({p.rsplit("/", 1)[0] for p in files if "/" in p}):
            info = tarfile.TarInfo(dirname)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path, content in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(content), 0o755
            tar.addfile(info, io.BytesIO(content))
    data = raw.getvalue()
    return Blob(LAYER_TAR_GZIP, gzip.compress(data, mtime=0)), "sha256:" + hashlib.sha256(
        data
    ).hexdigest()


def manifest_for(config: Blob, layers: list[Blob]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": MANIFEST_OCI,
        "config": config.descriptor(),
        "layers": [b.descriptor() for b in layers],
    }


@functools.cache
def _program_layer(program: bytes) -> tuple[Blob, str]:
    """The layer holding the runnable program (the same bytes in every image: made once)."""
    return tar_layer({PROGRAM: program})


def build_image(
    name: str, nonce: str | None = None, program: bytes | None = None
) -> tuple[Blob, Blob, dict[str, Any], list[Blob]]:
    """Config blob, unique layer, manifest, and every layer to upload, of a small image.

    The unique layer holds `/signcheck/<name>` (the name and a random nonce) and a tiny
    `/bin/true` placeholder. With `program` (a static binary, for nodes that really start
    containers) a first layer holds it as `/signcheck-app`, the entrypoint: the same layer in
    every image, the unique one last.
    """
    nonce = nonce or secrets.token_hex(16)
    files = {
        f"signcheck/{name}": f"signcheck test image {name}\nnonce {nonce}\n".encode(),
        "bin/true": b"#!/bin/sh\nexit 0\n",
    }
    layer, diff_id = tar_layer(files)
    layers, diff_ids = [layer], [diff_id]
    if program is not None:
        app, app_diff = _program_layer(program)
        layers, diff_ids = [app, layer], [app_diff, *diff_ids]
    config_doc = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": [f"/{PROGRAM}" if program is not None else "/bin/true"],
            "Labels": {"io.signcheck.image": name, "io.signcheck.nonce": nonce},
        },
        "rootfs": {
            "type": "layers",
            "diff_ids": diff_ids,
        },
        "history": [{"created_by": "signcheck.clients.ociimage.build_image"}],
    }
    config = Blob(CONFIG_OCI, json.dumps(config_doc, sort_keys=True).encode())
    return config, layer, manifest_for(config, layers), layers

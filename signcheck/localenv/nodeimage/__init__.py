"""Images a real node can run, FROM scratch: the pause image, the suite's test images made
runnable (the same static program as entrypoint, beside the run-unique layer), and images
of pinned binaries (Kyverno's, for the chart to install in the cluster).

The program is `pause.go` here, built once per (source, Go version) into the tool cache
with the Go toolchain signcheck builds its tools with; no base image, nothing pulled.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from importlib import resources
from pathlib import Path

from signcheck import places
from signcheck.clients.oci import OciClient, PushedImage
from signcheck.clients.ociimage import (
    CONFIG_OCI,
    LAYER_TAR_GZIP,
    MANIFEST_OCI,
    Blob,
    manifest_for,
    tar_layer,
)
from signcheck.errors import ToolError
from signcheck.tools import gobuild

SOURCE = "pause.go"


def program() -> Path:
    """The static pause binary, built on first use and cached by its source's hash."""
    source = resources.files("signcheck.localenv.nodeimage").joinpath(SOURCE).read_bytes()
    go = gobuild.go_binary()
    key = hashlib.sha256(source + go.encode()).hexdigest()[:16]
    out = places.cache_root() / "images" / "pause" / key / "pause"
    if out.is_file():
        return out
    work = out.parent / ".build"
    work.mkdir(parents=True, exist_ok=True)
    (work / "main.go").write_bytes(source)
    (work / "go.mod").write_text("module signcheck.local/pause\n\ngo 1.22\n")
    argv = [go, "build", "-trimpath", "-ldflags=-s -w", "-o", str(out), "."]
    proc = subprocess.run(argv, cwd=work, capture_output=True, text=True, env=gobuild.go_env())
    if proc.returncode != 0:
        raise ToolError(
            "could not build the real node's pause program",
            argv,
            proc.returncode,
            proc.stdout,
            proc.stderr,
        )
    return out


def push_pause(client: OciClient, repository: str, tag: str = "3.10") -> PushedImage:
    """The pause image, pushed to the run's registry (the sandbox image of every pod)."""
    layer, diff_id = tar_layer({"pause": program().read_bytes()})
    return _push(client, repository, tag, layer, diff_id, ["/pause"])


def _cached_layer(binary: Path, name: str) -> tuple[Blob, str]:
    """One layer holding `binary` as `/<name>`, compressed once per binary and kept beside
    the other images in the cache: a 140 MB Kyverno binary takes seconds to gzip."""
    st = binary.stat()
    key = hashlib.sha256(f"{binary.resolve()}:{st.st_size}:{st.st_mtime_ns}:{name}".encode())
    d = places.cache_root() / "images" / "layers" / key.hexdigest()[:24]
    blob_path, diff_path = d / "layer.tar.gz", d / "diff_id"
    if blob_path.is_file() and diff_path.is_file():
        return Blob(LAYER_TAR_GZIP, blob_path.read_bytes()), diff_path.read_text()
    layer, diff_id = tar_layer({name: binary.read_bytes()})
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".layer.{os.getpid()}"
    tmp.write_bytes(layer.data)
    tmp.replace(blob_path)
    diff_path.write_text(diff_id)
    return layer, diff_id


def push_binary_image(
    client: OciClient, repository: str, tag: str, binary: Path, name: str, user: str | None = None
) -> PushedImage:
    """An image of one static binary, `/<name>` its entrypoint (what the chart runs);
    `user` as the image's default user (`runAsNonRoot` needs one that is not root)."""
    layer, diff_id = _cached_layer(binary, name)
    return _push(client, repository, tag, layer, diff_id, [f"/{name}"], user)


def _push(
    client: OciClient,
    repository: str,
    tag: str,
    layer: Blob,
    diff_id: str,
    entrypoint: list[str],
    user: str | None = None,
) -> PushedImage:
    run_config: dict[str, object] = {"Entrypoint": entrypoint}
    if user:
        run_config["User"] = user
    config = Blob(
        CONFIG_OCI,
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": run_config,
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            },
            sort_keys=True,
        ).encode(),
    )
    manifest = manifest_for(config, [layer])
    client.push_blob(repository, layer.media_type, layer.data)
    client.push_blob(repository, config.media_type, config.data)
    raw = json.dumps(manifest, separators=(",", ":")).encode()
    digest = client.put_manifest(repository, tag, raw, MANIFEST_OCI)
    return PushedImage(repository, tag, digest, config.digest, layer.digest)

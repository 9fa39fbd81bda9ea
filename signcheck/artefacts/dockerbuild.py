"""`--image-builder docker`: test images built from `fixtures/Dockerfile` by a Docker-API
engine (Docker, or Podman's API service) and pushed by it, driven through python-on-whales.

For users whose images must come from a real build. The engine is whatever `DOCKER_HOST`
names (the CLI's own default otherwise). Registry credentials go into a private docker
config directory (0600), never into argv: `docker login --password` would put them there.
What the registry stored is read back through the registry API, so the digests the suite
signs are the registry's, not the engine's.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from signcheck.clients import oci
from signcheck.errors import ConfigError, SigncheckError
from signcheck.places import checkout_path
from signcheck.target import Registry
from signcheck.tools.cosign import docker_config


def _client(config_dir: Path | None = None):  # type: ignore[no-untyped-def]
    try:
        from python_on_whales import DockerClient
    except ImportError:
        raise ConfigError(
            "--image-builder docker needs python-on-whales: pip install 'signcheck[docker]'"
        ) from None
    return DockerClient(config=str(config_dir) if config_dir else None)


def check_engine() -> str:
    """The engine's name and version, or one error naming what is missing."""
    if not shutil.which("docker"):
        raise ConfigError(
            "--image-builder docker needs the docker CLI on PATH (python-on-whales drives it)"
        )
    from python_on_whales.exceptions import DockerException

    try:
        version = _client().version()
    except DockerException as err:
        host = os.environ.get("DOCKER_HOST", "the docker CLI's default socket")
        raise ConfigError(
            f"--image-builder docker: no Docker-API engine answers at {host}: start one "
            "(dockerd, or `podman system service tcp:127.0.0.1:PORT`) and set DOCKER_HOST",
            str(err.stderr or err)[-2000:],
        ) from None
    server = version.server
    name = getattr(server, "platform", None)
    label = getattr(name, "name", None) or "engine"
    return f"{label} {getattr(server, 'version', '?')} at {os.environ.get('DOCKER_HOST', '')}"


class DockerBuilder:
    """Builds and pushes one image per call; removes the engine's copy afterwards."""

    def __init__(self, registry: Registry, workdir: Path, dockerfile: Path | None = None) -> None:
        self.registry = registry
        self.dockerfile = dockerfile or checkout_path("fixtures/Dockerfile")
        self.workdir = workdir
        config_dir = workdir / "docker-build-config"
        config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        cfg = config_dir / "config.json"
        cfg.touch(mode=0o600)
        cfg.write_text(json.dumps(docker_config(registry)))
        self.client = _client(config_dir)
        self.oci = oci.OciClient(registry)

    def push_image(self, repository: str, tag: str, nonce: str | None = None) -> oci.PushedImage:
        from python_on_whales.exceptions import DockerException

        role = repository.rsplit("/", 1)[-1]
        nonce = nonce or secrets.token_hex(16)
        ref = f"{repository}:{tag}"
        with tempfile.TemporaryDirectory(prefix="signcheck-build-", dir=self.workdir) as ctx:
            (Path(ctx) / "signcheck.txt").write_text(f"signcheck {role}\nnonce {nonce}\n")
            shutil.copy2(self.dockerfile, Path(ctx) / "Dockerfile")
            try:
                self.client.image.legacy_build(
                    ctx, build_args={"ROLE": role, "NONCE": nonce}, tags=[ref]
                )
                self.client.image.push(ref, quiet=True)
            except DockerException as err:
                raise SigncheckError(
                    f"the Docker engine could not build or push {ref}",
                    str(err.stderr or err)[-3000:],
                ) from err
            finally:
                with contextlib.suppress(DockerException):
                    self.client.image.remove(ref, force=True)
        return self.read_back(repository, tag)

    def read_back(self, repository: str, tag: str) -> oci.PushedImage:
        digest = self.oci.resolve(repository, tag)
        if digest is None:
            raise SigncheckError(f"the engine pushed {repository}:{tag} but the registry lacks it")
        raw, _, _ = self.oci.manifest(repository, digest)
        manifest = json.loads(raw)
        layers = manifest.get("layers") or [{}]
        return oci.PushedImage(
            repository,
            tag,
            digest,
            str(manifest.get("config", {}).get("digest", "")),
            str(layers[-1].get("digest", "")),
        )

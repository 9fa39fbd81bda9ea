"""`--image-builder docker`: test images built from `fixtures/Dockerfile` by a Docker-API
engine (Docker, or Podman's API service) and pushed by it, through the Docker SDK (the
engine's API itself: no docker CLI needed).

For users whose images must come from a real build. The engine is whatever `DOCKER_HOST`
names (the SDK's default socket otherwise). Registry credentials travel in the push call's
auth header, never in argv or a file.
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
from typing import Any

from signcheck.clients import oci
from signcheck.errors import ConfigError, SigncheckError
from signcheck.places import checkout_path
from signcheck.target import Registry

ENGINE_TIMEOUT = 300
"""Seconds one engine call (a build, a push) may take."""


def _docker() -> Any:
    try:
        import docker
    except ImportError:
        raise ConfigError(
            "--image-builder docker needs the Docker SDK: pip install 'signcheck[docker]'"
        ) from None
    return docker


def _client() -> Any:
    """A client for the engine `DOCKER_HOST` names (the SDK's default socket otherwise), its
    API version negotiated so Docker and Podman's compatible API both answer."""
    docker = _docker()
    try:
        return docker.from_env(version="auto", timeout=ENGINE_TIMEOUT)
    except docker.errors.DockerException as err:
        host = os.environ.get("DOCKER_HOST", "the default socket (/var/run/docker.sock)")
        raise ConfigError(
            f"--image-builder docker: no Docker-API engine answers at {host}: start one "
            "(dockerd, or `podman system service tcp:127.0.0.1:PORT`) and set DOCKER_HOST",
            str(err)[-2000:],
        ) from None


def check_engine() -> str:
    """The engine's name and version, or one error naming what is missing."""
    version = _client().version()
    name = (version.get("Platform") or {}).get("Name") or "engine"
    return f"{name} {version.get('Version', '?')} at {os.environ.get('DOCKER_HOST', '')}"


class DockerBuilder:
    """Builds and pushes one image per call; removes the engine's copy afterwards."""

    def __init__(self, registry: Registry, workdir: Path, dockerfile: Path | None = None) -> None:
        self.registry = registry
        self.dockerfile = dockerfile or checkout_path("fixtures/Dockerfile")
        self.workdir = workdir
        self.client = _client()
        self.oci = oci.OciClient(registry)

    def _auth(self) -> dict[str, str] | None:
        # Through the API's X-Registry-Auth header: never argv, never a config file on disk.
        reg = self.registry
        if not reg.has_auth:
            return None
        return {"username": str(reg.username), "password": str(reg.password)}

    def push_image(self, repository: str, tag: str, nonce: str | None = None) -> oci.PushedImage:
        errors = _docker().errors
        role = repository.rsplit("/", 1)[-1]
        nonce = nonce or secrets.token_hex(16)
        ref = f"{repository}:{tag}"
        with tempfile.TemporaryDirectory(prefix="signcheck-build-", dir=self.workdir) as ctx:
            (Path(ctx) / "signcheck.txt").write_text(f"signcheck {role}\nnonce {nonce}\n")
            shutil.copy2(self.dockerfile, Path(ctx) / "Dockerfile")
            try:
                self.client.images.build(
                    path=ctx, buildargs={"ROLE": role, "NONCE": nonce}, tag=ref, rm=True
                )
                # A failed push is a line in the progress stream, not an exception.
                for line in self.client.images.push(
                    repository, tag=tag, auth_config=self._auth(), stream=True, decode=True
                ):
                    if isinstance(line, dict) and line.get("error"):
                        raise errors.APIError(str(line["error"]))
            except (errors.BuildError, errors.APIError) as err:
                raise SigncheckError(
                    f"the Docker engine could not build or push {ref}", str(err)[-3000:]
                ) from err
            finally:
                with contextlib.suppress(errors.APIError):
                    self.client.images.remove(ref, force=True)
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

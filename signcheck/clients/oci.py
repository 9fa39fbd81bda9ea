"""Test images without a Docker daemon: push, resolve, list, read and delete through the OCI
distribution API, using the `oras` client library (the images themselves:
`signcheck.clients.ociimage`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import oras.container
import oras.provider
import requests

from signcheck import redact
from signcheck.clients.ociimage import (
    COSIGN_SIGNATURE_ANNOTATION,
    INDEX_OCI,
    MANIFEST_DOCKER,
    MANIFEST_OCI,
    SIMPLE_SIGNING,
    Blob,
    build_image,
)
from signcheck.errors import SigncheckError
from signcheck.target import Registry

ACCEPT = ", ".join([MANIFEST_OCI, MANIFEST_DOCKER, INDEX_OCI])

REQUEST_TIMEOUT = 30.0

# oras logs every retry at INFO with the URL; keep it quiet unless something is wrong.
logging.getLogger("oras").setLevel(logging.WARNING)


class RegistryError(SigncheckError):
    """The registry refused or could not be reached; says which operation and why."""


@dataclass(frozen=True)
class PushedImage:
    """An image this run pushed: where it is and what it is."""

    repository: str
    """host:port/path, no tag."""
    tag: str
    digest: str
    """The manifest digest (what cosign signs and Kyverno pins to)."""
    config_digest: str
    layer_digest: str

    @property
    def by_tag(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def by_digest(self) -> str:
        return f"{self.repository}@{self.digest}"

    @property
    def signature_tag(self) -> str:
        return signature_tag(self.digest)


@dataclass(frozen=True)
class SimpleSigning:
    """One cosign signature layer: the simple-signing payload and its signature."""

    payload: dict[str, Any]
    signature: str
    layer_digest: str

    @property
    def signed_digest(self) -> str:
        return str(self.payload.get("critical", {}).get("image", {}).get("docker-manifest-digest"))

    @property
    def identity(self) -> str:
        return str(self.payload.get("critical", {}).get("identity", {}).get("docker-reference"))


@dataclass(frozen=True)
class SignatureArtifact:
    """The `sha256-<hex>.sig` manifest beside an image, as cosign stores key signatures."""

    repository: str
    tag: str
    digest: str
    manifest: dict[str, Any]
    signatures: tuple[SimpleSigning, ...]


def signature_tag(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    if not hexpart:
        raise ValueError(f"not a digest: {digest!r}")
    return f"{algo}-{hexpart}.sig"


def split_repository(repository: str) -> tuple[str, str]:
    """('host:port', 'path/name') from 'host:port/path/name'."""
    host, sep, path = repository.partition("/")
    if not sep or not path:
        raise ValueError(f"repository {repository!r} has no host part")
    return host, path


class OciClient:
    """One registry, reached with the scheme, CA and credentials its `Registry` names."""

    def __init__(self, registry: Registry, program: bytes | None = None) -> None:
        self.registry = registry
        self.program = program
        """A static program the test images run (nodes that really start containers)."""
        self._verify: bool | str = str(registry.ca_file) if registry.ca_file else True
        self._base = f"{registry.scheme}://{registry.host}"
        self._client: oras.provider.Registry | None = None

    @property
    def _oras(self) -> oras.provider.Registry:
        """The oras client, with the auth backend the registry's challenge asks for."""
        if self._client is None:
            challenge = self._challenge()
            client = oras.provider.Registry(
                hostname=self.registry.host,
                insecure=self.registry.insecure,
                tls_verify=self._verify,
                # distribution's htpasswd auth answers 401 with a Basic challenge; cloud
                # registries with a Bearer challenge exchange the same credentials for a
                # token. The wrong backend makes oras retry for minutes.
                auth_backend="basic" if challenge == "basic" else "token",
            )
            if self.registry.has_auth:
                assert self.registry.username and self.registry.password
                client.auth.set_basic_auth(self.registry.username, self.registry.password)
                if challenge == "basic":
                    # Up front, not after a 401: a registry refuses an unauthenticated blob
                    # PUT as soon as it reads the headers, and over TLS the client, still
                    # sending megabytes, sees only a broken connection (SSLEOFError).
                    client.session.auth = (self.registry.username, self.registry.password)
            # oras sends requests without a timeout; a registry that accepts the connection
            # and never answers must not hang the suite.
            session = client.session
            session.request = functools.partial(session.request, timeout=REQUEST_TIMEOUT)
            self._client = client
        return self._client

    def _challenge(self, timeout: float = 5.0) -> str:
        """'basic', 'bearer' or '' (no auth), from an anonymous GET /v2/."""
        try:
            resp = requests.get(f"{self._base}/v2/", timeout=timeout, verify=self._verify)
        except requests.RequestException as err:
            raise RegistryError(
                f"registry {self.registry.host} is unreachable over {self.registry.scheme}",
                str(err),
            ) from err
        if resp.status_code != 401:
            return ""
        return resp.headers.get("WWW-Authenticate", "").split(" ", 1)[0].lower()

    # -- plumbing ---------------------------------------------------------------------

    def _container(self, repository: str) -> oras.container.Container:
        host, _ = split_repository(repository)
        if host != self.registry.host:
            raise ValueError(f"{repository} is not on registry {self.registry.host}")
        return oras.container.Container(repository, registry=host)

    def _request(
        self,
        op: str,
        method: str,
        url: str,
        *,
        ok: tuple[int, ...] = (200,),
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        try:
            resp: requests.Response = self._oras.do_request(
                url, method, data=data, headers=dict(headers or {})
            )
        except (requests.RequestException, ValueError) as err:
            raise RegistryError(
                f"{op}: registry {self.registry.host} could not be reached or refused the request",
                redact.redact(f"{method} {url}: {err}"),
            ) from err
        if resp.status_code not in ok:
            raise RegistryError(
                f"{op}: registry {self.registry.host} answered {resp.status_code}",
                redact.redact(f"{method} {url}\n{resp.text[:2000]}"),
            )
        return resp

    def requires_auth(self) -> bool:
        """Whether the registry refuses anonymous clients (answers /v2/ with a challenge)."""
        return bool(self._challenge())

    def has_referrers_api(self, image: PushedImage) -> bool:
        """Whether the registry serves the OCI 1.1 referrers API (`GET
        /v2/<name>/referrers/<digest>`); without it cosign v3 falls back to the referrers
        tag schema (a `sha256-<hex>` tag holding an index)."""
        _, path = split_repository(image.repository)
        url = f"{self._base}/v2/{path}/referrers/{image.digest}"
        resp = self._request(f"referrers of {image.by_digest}", "GET", url, ok=(200, 404, 405))
        return resp.status_code == 200 and "index" in resp.headers.get("Content-Type", "")

    def ping(self, timeout: float = 5.0) -> None:
        """Fail fast, in one sentence, when the registry is unreachable or refuses our
        credentials (oras itself retries for minutes before giving up)."""
        challenge = self._challenge(timeout)
        if challenge and not self.registry.has_auth:
            raise RegistryError(
                f"registry {self.registry.host} requires credentials and none were given"
            )
        if challenge == "basic":
            assert self.registry.username and self.registry.password
            resp = requests.get(
                f"{self._base}/v2/",
                auth=(self.registry.username, self.registry.password),
                timeout=timeout,
                verify=self._verify,
            )
            if resp.status_code == 401:
                raise RegistryError(f"registry {self.registry.host} rejected the credentials")
            if resp.status_code != 200:
                raise RegistryError(
                    f"registry {self.registry.host} answered {resp.status_code} on /v2/",
                    redact.redact(resp.text[:500]),
                )
        elif challenge:
            # Token registries: oras fetches a token with the credentials on first use.
            self.tags(f"{self.registry.host}/{self.registry.repository_prefix}/ping")

    def _put_blob(self, repository: str, blob: Blob) -> None:
        container = self._container(repository)
        with tempfile.TemporaryDirectory(prefix="signcheck-blob-") as tmp:
            path = Path(tmp) / "blob"
            path.write_bytes(blob.data)
            try:
                resp = self._oras.upload_blob(str(path), container, blob.descriptor())
            except (requests.RequestException, ValueError) as err:
                raise RegistryError(
                    f"upload of blob {blob.digest} to {repository} failed", str(err)
                ) from err
        if resp.status_code not in (200, 201, 202):
            raise RegistryError(
                f"upload of blob {blob.digest} to {repository}: registry answered "
                f"{resp.status_code}",
                redact.redact(resp.text[:2000]),
            )

    # -- images -----------------------------------------------------------------------

    def push_image(self, repository: str, tag: str, nonce: str | None = None) -> PushedImage:
        name = repository.rsplit("/", 1)[-1]
        config, layer, manifest, layers = build_image(name, nonce, self.program)
        for blob in layers:
            self._put_blob(repository, blob)
        self._put_blob(repository, config)
        raw = json.dumps(manifest, separators=(",", ":")).encode()
        digest = self.put_manifest(repository, tag, raw, MANIFEST_OCI)
        return PushedImage(repository, tag, digest, config.digest, layer.digest)

    def put_manifest(self, repository: str, reference: str, raw: bytes, media_type: str) -> str:
        """Store exact manifest bytes under a tag or digest; returns the manifest digest."""
        url = f"{self.registry.scheme}://{self._container(repository).manifest_url(reference)}"
        resp = self._request(
            f"push manifest {repository}:{reference}",
            "PUT",
            url,
            ok=(200, 201),
            data=raw,
            headers={"Content-Type": media_type},
        )
        expected = "sha256:" + hashlib.sha256(raw).hexdigest()
        got = resp.headers.get("Docker-Content-Digest", expected)
        if got != expected:
            raise RegistryError(
                f"registry {self.registry.host} stored {repository}:{reference} as {got}, "
                f"expected {expected}"
            )
        return expected

    def manifest(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        """(raw bytes, media type, digest) of a manifest by tag or digest."""
        url = f"{self.registry.scheme}://{self._container(repository).manifest_url(reference)}"
        resp = self._request(
            f"get manifest {repository}:{reference}", "GET", url, headers={"Accept": ACCEPT}
        )
        raw = resp.content
        digest = resp.headers.get("Docker-Content-Digest") or (
            "sha256:" + hashlib.sha256(raw).hexdigest()
        )
        return raw, resp.headers.get("Content-Type", ""), digest

    def resolve(self, repository: str, tag: str) -> str | None:
        """The manifest digest a tag points to now, or None when the tag does not exist."""
        url = f"{self.registry.scheme}://{self._container(repository).manifest_url(tag)}"
        resp = self._request(
            f"resolve {repository}:{tag}", "HEAD", url, ok=(200, 404), headers={"Accept": ACCEPT}
        )
        if resp.status_code == 404:
            return None
        digest = resp.headers.get("Docker-Content-Digest")
        if not digest:
            _raw, _, digest = self.manifest(repository, tag)
        return digest

    def blob(self, repository: str, digest: str) -> bytes:
        url = f"{self.registry.scheme}://{self._container(repository).get_blob_url(digest)}"
        resp = self._request(f"get blob {repository}@{digest}", "GET", url)
        data = resp.content
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise RegistryError(f"blob {digest} from {repository} hashes to {actual}")
        return data

    def tags(self, repository: str) -> list[str]:
        """All tags of a repository; an unknown repository has none."""
        container = self._container(repository)
        url = f"{self.registry.scheme}://{container.tags_url()}"
        tags: list[str] = []
        while url:
            resp = self._request(f"list tags of {repository}", "GET", url, ok=(200, 404))
            if resp.status_code == 404:
                return []
            tags.extend(resp.json().get("tags") or [])
            nxt = resp.links.get("next", {}).get("url")
            url = urllib.parse.urljoin(url, nxt) if nxt else ""
        return sorted(tags)

    def catalog(self) -> list[str] | None:
        """Every repository name (without the host), or None where the registry offers no
        catalog (many cloud registries do not, or not to this user)."""
        url = f"{self._base}/v2/_catalog?n=1000"
        names: list[str] = []
        while url:
            resp = self._request("list repositories", "GET", url, ok=(200, 401, 403, 404))
            if resp.status_code != 200:
                return None
            names.extend(resp.json().get("repositories") or [])
            nxt = resp.links.get("next", {}).get("url")
            url = urllib.parse.urljoin(url, nxt) if nxt else ""
        return sorted(names)

    def delete(self, repository: str, reference: str) -> bool:
        """Delete a manifest (by digest, or the manifest a tag points to). Returns False if it
        was already gone: NotFound counts as success, so cleanup is safe to repeat."""
        digest: str | None = reference
        if not reference.startswith("sha256:"):
            digest = self.resolve(repository, reference)
        if digest is None:
            return False
        url = f"{self.registry.scheme}://{self._container(repository).manifest_url(digest)}"
        resp = self._request(
            f"delete {repository}@{digest}", "DELETE", url, ok=(200, 202, 404, 405)
        )
        if resp.status_code == 405:
            raise RegistryError(
                f"registry {self.registry.host} does not allow deletes; enable "
                "storage.delete in its configuration so runs can remove what they pushed"
            )
        return resp.status_code != 404

    def delete_repository(self, repository: str) -> list[str]:
        """Delete every manifest a repository's tags point to; returns the digests deleted."""
        deleted = []
        seen: set[str] = set()
        for tag in self.tags(repository):
            digest = self.resolve(repository, tag)
            if digest and digest not in seen:
                seen.add(digest)
                if self.delete(repository, digest):
                    deleted.append(digest)
        return deleted

    # -- cosign artefacts -------------------------------------------------------------

    def signature(self, repository: str, digest: str) -> SignatureArtifact | None:
        """The legacy cosign signature stored beside an image digest, or None."""
        tag = signature_tag(digest)
        if self.resolve(repository, tag) is None:
            return None
        raw, _, sig_digest = self.manifest(repository, tag)
        manifest = json.loads(raw)
        sigs = []
        for layer in manifest.get("layers", []):
            if layer.get("mediaType") != SIMPLE_SIGNING:
                continue
            payload = json.loads(self.blob(repository, layer["digest"]))
            sigs.append(
                SimpleSigning(
                    payload=payload,
                    signature=(layer.get("annotations") or {}).get(COSIGN_SIGNATURE_ANNOTATION, ""),
                    layer_digest=layer["digest"],
                )
            )
        return SignatureArtifact(repository, tag, sig_digest, manifest, tuple(sigs))

    def push_blob(self, repository: str, media_type: str, data: bytes) -> Blob:
        """Upload one blob (used to forge artefacts in attack scenarios)."""
        blob = Blob(media_type, data)
        self._put_blob(repository, blob)
        return blob

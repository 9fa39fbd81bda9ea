"""CNCF distribution (`registry serve config.yml`), storage in the run dir.

Optional htpasswd auth (distribution accepts bcrypt entries only) and optional TLS with a
CA of its own, so the private-registry path (pull secrets, a CA the client must trust) can
be tested. The credentials go to a 0600 file; nothing prints them.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from pathlib import Path

import bcrypt
import yaml

from signcheck.localenv import pki
from signcheck.localenv.ports import HOST, free_port
from signcheck.localenv.probes import http_probe, ssl_context
from signcheck.localenv.process import Probe
from signcheck.localenv.services.base import Service
from signcheck.target import Registry as RegistryTarget
from signcheck.timeouts import Timeouts

USERNAME = "signcheck"
SERVING_STEM = "registry"
"""The serving pair's file stem under `<registry dir>/tls` (see `serving_pair`)."""


def serving_pair(registry_dir: Path) -> tuple[Path, Path]:
    """Where a TLS registry keeps its serving certificate and key: also presented by the
    fault proxy in front of it (`signcheck.artefacts.faultproxy`)."""
    tls = registry_dir / "tls"
    return tls / f"{SERVING_STEM}.crt", tls / f"{SERVING_STEM}.key"


class Registry(Service):
    name = "registry"
    tool = "registry"

    def __init__(
        self, run_dir: Path, binary: Path, timeouts: Timeouts, *, auth: bool, tls: bool
    ) -> None:
        super().__init__(run_dir, binary, timeouts)
        self.auth = auth
        self.tls = tls
        self.ports["http"] = free_port()
        self.password = secrets.token_urlsafe(18) if auth else ""
        self.ca_path: Path | None = None
        self.credentials_path: Path | None = None
        self.docker_config_dir: Path | None = None

    @property
    def host(self) -> str:
        return f"{HOST}:{self.ports['http']}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def config_path(self) -> Path:
        return self.dir / "config.yml"

    def prepare(self) -> None:
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.dir / "storage")},
                "delete": {"enabled": True},
            },
            "http": {"addr": self.host, "secret": secrets.token_hex(16)},
            # The default health check stats the storage driver every 10s: noise, no value here.
            "health": {"storagedriver": {"enabled": False}},
        }
        if self.tls:
            ca = pki.new_ca("signcheck registry CA")
            self.ca_path, _ = ca.write(self.dir / "tls", "ca")
            serving = pki.issue(ca, "registry", ips=[HOST], dns=["localhost"], server=True)
            cert, key = serving.write(self.dir / "tls", SERVING_STEM)
            config["http"] = {**config["http"], "tls": {"certificate": str(cert), "key": str(key)}}  # type: ignore[dict-item]
        if self.auth:
            htpasswd = self.dir / "htpasswd"
            # distribution compares the bcrypt hash on every authenticated request (no cache):
            # half the registry's CPU in a run at cost 5 (pprof). The password is random per
            # run, so bcrypt's cost protects nothing here: the minimum, 4.
            hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=4)).decode()
            htpasswd.write_text(f"{USERNAME}:{hashed}\n")
            config["auth"] = {"htpasswd": {"realm": "signcheck", "path": str(htpasswd)}}
            self._write_credentials()
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def _write_credentials(self) -> None:
        creds = self.dir / "credentials.json"
        creds.touch(mode=0o600)
        creds.write_text(
            json.dumps({"registry": self.host, "username": USERNAME, "password": self.password})
        )
        self.credentials_path = creds
        self.docker_config_dir = self.dir / "docker-config"
        self.docker_config_dir.mkdir(mode=0o700, exist_ok=True)
        cfg = self.docker_config_dir / "config.json"
        cfg.touch(mode=0o600)
        cfg.write_text(json.dumps(self.dockerconfigjson()))

    def dockerconfigjson(self) -> dict[str, object]:
        token = base64.b64encode(f"{USERNAME}:{self.password}".encode()).decode()
        return {
            "auths": {self.host: {"username": USERNAME, "password": self.password, "auth": token}}
        }

    def as_target(self) -> RegistryTarget:
        """This registry as the suite's clients see it (with the credentials, if any)."""
        return RegistryTarget(
            self.host,
            "https" if self.tls else "http",
            ca_file=self.ca_path,
            username=USERNAME if self.auth else None,
            password=self.password if self.auth else None,
        )

    def argv(self) -> list[str]:
        return ["serve", str(self.config_path)]

    def env(self) -> Mapping[str, str]:
        # The registry exports traces by default and would dial a collector that is not there.
        return {"OTEL_TRACES_EXPORTER": "none"}

    def ready(self) -> Probe:
        ctx = ssl_context(self.ca_path) if self.tls else None
        # With auth on, /v2/ answers 401 with a challenge: that is a healthy registry.
        return http_probe(f"{self.scheme}://{self.host}/v2/", context=ctx, ok=(200, 401))

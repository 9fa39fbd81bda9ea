"""A real KMS on loopback: a Vault dev server with the transit engine, for the KMS flow.

Dev mode keeps everything in memory and unseals itself; the root token is random per start
and passed through the environment (argv is visible to every user through `ps`).
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from signcheck import kms, tools
from signcheck.localenv.ports import free_port
from signcheck.localenv.probes import http_probe
from signcheck.localenv.process import ManagedProcess


class VaultDev:
    """`with VaultDev(run_dir) as vault: key = vault.key("signcheck-abc")`."""

    def __init__(self, run_dir: Path, ready_timeout: float = 30.0) -> None:
        self.run_dir = run_dir
        self.port = free_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        self._token = secrets.token_urlsafe(24)
        self.process = ManagedProcess(
            "vault",
            [
                tools.path_of("vault"),
                "server",
                "-dev",
                f"-dev-listen-address=127.0.0.1:{self.port}",
                "-dev-no-store-token",
            ],
            log_path=run_dir / "logs" / "vault.log",
            ready=http_probe(f"{self.addr}/v1/sys/health"),
            env={"VAULT_DEV_ROOT_TOKEN_ID": self._token, "HOME": str(run_dir)},
            ready_timeout=ready_timeout,
        )

    def __enter__(self) -> VaultDev:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        try:
            self.process.start()
            self._api("POST", "/v1/sys/mounts/transit", {"type": "transit"})
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.process.stop()

    def _api(self, method: str, path: str, body: dict[str, object] | None = None) -> bytes:
        req = urllib.request.Request(
            self.addr + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"X-Vault-Token": self._token, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            data: bytes = resp.read()
            return data

    def key(self, name: str) -> kms.KmsKey:
        return kms.vault_key(name, self.addr, self._token)

    def key_exists(self, name: str) -> bool:
        try:
            self._api("GET", f"/v1/transit/keys/{name}")
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return False
            raise
        return True

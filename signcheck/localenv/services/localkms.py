"""A KMS on loopback for the KMS signing flow: local-kms behind a TLS front.

local-kms is a stand-in for AWS KMS (a cloud service these machines cannot reach) that
really generates keys and signs; cosign reaches it through its `awskms://` provider exactly
as it reaches `yckms://` in the seed: a key reference instead of a key file, credentials in
the environment only. cosign trusts the front's certificate through AWS_CA_BUNDLE (the AWS
SDK's own CA setting; it ignores SSL_CERT_FILE), never through "skip verify".
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from types import TracebackType

from signcheck.artefacts import kms
from signcheck.localenv import pki
from signcheck.localenv.ports import free_port
from signcheck.localenv.probes import http_probe, ssl_context
from signcheck.localenv.process import ManagedProcess
from signcheck.tools import pins


class LocalKms:
    """`with LocalKms(run_dir) as lk: key = lk.key("signcheck-<run id>")`."""

    def __init__(self, run_dir: Path, ready_timeout: float = 30.0) -> None:
        self.dir = run_dir / "local-kms"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.tls_port = free_port()
        ca = pki.new_ca("signcheck local-kms CA")
        self.ca_path, _ = ca.write(self.dir, "ca")
        cert, key = pki.issue(ca, "local-kms", ips=["127.0.0.1"], server=True).write(
            self.dir, "tls"
        )
        logs = run_dir / "logs"
        self.kms = ManagedProcess(
            "local-kms",
            [str(pins.path_of("local-kms"))],
            log_path=logs / "local-kms.log",
            env={
                "PORT": str(self.http_port),
                "KMS_DATA_PATH": str(self.dir / "data"),
                "KMS_REGION": "eu-west-1",
                "KMS_ACCOUNT_ID": "111122223333",
            },
            ready=http_probe(f"http://127.0.0.1:{self.http_port}/", ok=range(200, 500)),
            ready_timeout=ready_timeout,
        )
        self.front = ManagedProcess(
            "local-kms-tls",
            [
                sys.executable,
                "-m",
                "signcheck.localenv.tlsproxy",
                "--listen",
                str(self.tls_port),
                "--backend",
                str(self.http_port),
                "--cert",
                str(cert),
                "--key",
                str(key),
            ],
            log_path=logs / "local-kms-tls.log",
            ready=http_probe(
                f"https://127.0.0.1:{self.tls_port}/",
                context=ssl_context(self.ca_path),
                ok=range(200, 500),
            ),
            ready_timeout=ready_timeout,
        )
        # Any non-empty values: local-kms does not check them; the AWS SDK insists on some.
        self._access = "signcheck-" + secrets.token_hex(4)
        self._secret = secrets.token_urlsafe(24)

    def __enter__(self) -> LocalKms:
        try:
            self.kms.start()
            self.front.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        self.front.stop()
        self.kms.stop()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.tls_port}"

    def key(self, alias: str) -> kms.KmsKey:
        return kms.aws_key(
            alias,
            endpoint=self.endpoint,
            env={
                "AWS_ACCESS_KEY_ID": self._access,
                "AWS_SECRET_ACCESS_KEY": self._secret,
                "AWS_REGION": "eu-west-1",
                "AWS_CA_BUNDLE": str(self.ca_path),
            },
        )

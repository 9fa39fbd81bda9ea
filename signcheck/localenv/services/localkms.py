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
from signcheck.localenv import pki, tlsproxy
from signcheck.localenv.ports import free_port
from signcheck.localenv.probes import http_probe, ssl_context
from signcheck.localenv.process import Probe
from signcheck.localenv.services.base import Service
from signcheck.timeouts import Timeouts
from signcheck.tools import pins

REGION = "eu-west-1"


class KmsServer(Service):
    """local-kms itself, plain HTTP on loopback (never reached directly by cosign)."""

    name = "local-kms"
    tool = "local-kms"

    def __init__(self, run_dir: Path, binary: Path, timeouts: Timeouts) -> None:
        super().__init__(run_dir, binary, timeouts)
        self.ports["http"] = free_port()

    def argv(self) -> list[str]:
        return []

    def env(self) -> dict[str, str]:
        return {
            "PORT": str(self.ports["http"]),
            "KMS_DATA_PATH": str(self.dir / "data"),
            "KMS_REGION": REGION,
            "KMS_ACCOUNT_ID": "111122223333",
        }

    def ready(self) -> Probe:
        return http_probe(f"http://127.0.0.1:{self.ports['http']}/", ok=range(200, 500))


class TlsFront(Service):
    """`python -I .../tlsproxy.py`: HTTPS with a CA of its own, in front of local-kms (the
    AWS SDK speaks only HTTPS)."""

    name = "local-kms-tls"

    def __init__(self, run_dir: Path, timeouts: Timeouts, backend: int) -> None:
        super().__init__(run_dir, Path(sys.executable), timeouts)
        self.ports["https"] = free_port()
        self.backend = backend
        self.ca_path = self.dir / "ca.crt"

    def prepare(self) -> None:
        ca = pki.new_ca("signcheck local-kms CA")
        self.ca_path, _ = ca.write(self.dir, "ca")
        self._cert, self._key = pki.issue(ca, "local-kms", ips=["127.0.0.1"], server=True).write(
            self.dir, "tls"
        )

    def argv(self) -> list[str]:
        # By path, isolated: the proxy is stdlib only, and `-m` would import the package's
        # __init__ (the whole environment and the Kubernetes client): max RSS 60 MB, not 22.
        return [
            "-I",
            str(Path(tlsproxy.__file__)),
            "--listen",
            str(self.ports["https"]),
            "--backend",
            str(self.backend),
            "--cert",
            str(self._cert),
            "--key",
            str(self._key),
        ]

    def ready(self) -> Probe:
        return http_probe(
            f"https://127.0.0.1:{self.ports['https']}/",
            context=ssl_context(self.ca_path),
            ok=range(200, 500),
        )


class LocalKms:
    """`with LocalKms(run_dir) as lk: key = lk.key("signcheck-<run id>")`."""

    def __init__(self, run_dir: Path, timeouts: Timeouts | None = None) -> None:
        timeouts = timeouts or Timeouts.from_env()
        server = KmsServer(run_dir, pins.path_of("local-kms"), timeouts)
        self.front = TlsFront(run_dir, timeouts, backend=server.ports["http"])
        self.processes = [server.build(), self.front.build()]
        # Any non-empty values: local-kms does not check them; the AWS SDK insists on some.
        self._access = "signcheck-" + secrets.token_hex(4)
        self._secret = secrets.token_urlsafe(24)

    def __enter__(self) -> LocalKms:
        try:
            for process in self.processes:
                process.start()
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
        for process in reversed(self.processes):
            process.stop()

    @property
    def ca_path(self) -> Path:
        return self.front.ca_path

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.front.ports['https']}"

    def key(self, alias: str) -> kms.KmsKey:
        return kms.aws_key(
            alias,
            endpoint=self.endpoint,
            env={
                "AWS_ACCESS_KEY_ID": self._access,
                "AWS_SECRET_ACCESS_KEY": self._secret,
                "AWS_REGION": REGION,
                "AWS_CA_BUNDLE": str(self.ca_path),
            },
        )

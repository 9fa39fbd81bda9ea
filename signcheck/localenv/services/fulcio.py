"""A local Fulcio for keyless signing (KEY-*): an ephemeral certificate authority that issues
short-lived code-signing certificates to whoever presents a service-account token of the
local apiserver, the way Sigstore's own test scaffolding trusts a cluster's issuer.

Fulcio discovers its OIDC issuer by the token's `iss` (`https://kubernetes.default.svc.
cluster.local`), and its metrics server binds every address. Both are kept inside a network
and mount namespace of the run's own: its only interface is loopback, `/etc/hosts` there
names 127.0.0.1 for the issuer, and a forwarder joins the two sides: Fulcio's HTTP port on
host loopback, and the namespace's port 443 to the apiserver on host loopback. Nothing
listens outside loopback on the host, and nothing inside has a route out.

The apiserver serves discovery and keys only to authenticated callers by default; go-oidc
asks anonymously, so the run binds `system:service-account-issuer-discovery` to
`system:unauthenticated` (the local target's own cluster only).

Fulcio v1.8.8 runs with separate HTTP and gRPC ports: with one port for both (its "duplex"
server) it panics at start-up registering the same Prometheus metrics twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from signcheck.errors import ConfigError, EnvironmentNotReady
from signcheck.localenv import forward, netns
from signcheck.localenv.ports import free_port
from signcheck.localenv.probes import http_get, http_probe
from signcheck.localenv.process import ManagedProcess, Probe
from signcheck.localenv.services.apiserver import SA_HOST, SA_ISSUER
from signcheck.localenv.services.base import Service
from signcheck.timeouts import Timeouts

CLIENT_ID = "sigstore"
"""The audience Fulcio requires of a token (its `ClientID` for the issuer)."""


def config(issuer: str = SA_ISSUER) -> dict[str, object]:
    """Fulcio's configuration: one OIDC issuer of type `kubernetes` (the certificate's SAN is
    `https://kubernetes.io/namespaces/<ns>/serviceaccounts/<name>`)."""
    return {
        "OIDCIssuers": {
            issuer: {"IssuerURL": issuer, "ClientID": CLIENT_ID, "Type": "kubernetes"},
        }
    }


def subject(namespace: str, service_account: str) -> str:
    """The identity Fulcio writes into the certificate of that service account's token."""
    return f"https://kubernetes.io/namespaces/{namespace}/serviceaccounts/{service_account}"


class FulcioServer(Service):
    name = "fulcio"
    tool = "fulcio"
    stop_grace = 0

    def __init__(
        self, run_dir: Path, binary: Path, timeouts: Timeouts, prefix: list[str], ca_file: Path
    ) -> None:
        super().__init__(run_dir, binary, timeouts)
        self.prefix = tuple(prefix)
        self.ca_file = ca_file
        # Inside the namespace any port is free; the HTTP one is the same number on the host.
        self.ports.update(http=free_port(), grpc=free_port(), metrics=free_port())

    def prepare(self) -> None:
        (self.dir / "config.json").write_text(json.dumps(config()))

    def argv(self) -> list[str]:
        p = self.ports
        return [
            "serve",
            "--ca=ephemeralca",
            f"--config-path={self.dir / 'config.json'}",
            # No certificate transparency log: signing and verification are offline.
            "--ct-log-url=",
            "--host=127.0.0.1",
            f"--port={p['http']}",
            "--grpc-host=127.0.0.1",
            f"--grpc-port={p['grpc']}",
            f"--metrics-port={p['metrics']}",
            "--log_type=prod",
        ]

    def env(self) -> dict[str, str]:
        # The apiserver's CA, for the issuer's discovery document and keys.
        return {"SSL_CERT_FILE": str(self.ca_file)}

    def ready(self) -> Probe:
        return http_probe(f"{self.url}/api/v1/rootCert")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"


class LocalFulcio:
    """`with LocalFulcio(run_dir, binary, apiserver_port, ca_file) as f: f.url, f.root_pem`."""

    def __init__(
        self,
        run_dir: Path,
        binary: Path,
        apiserver_port: int,
        ca_file: Path,
        timeouts: Timeouts | None = None,
    ) -> None:
        if missing := netns.missing_tools():
            raise ConfigError(
                f"keyless signing needs {', '.join(missing)} on PATH: apt-get install "
                "util-linux iproute2 (Debian)"
            )
        self.run_dir = run_dir
        self.binary = binary
        self.apiserver_port = apiserver_port
        self.ca_file = ca_file
        self.timeouts = timeouts or Timeouts.from_env()
        self.dir = run_dir / "fulcio-netns"
        self.processes: list[ManagedProcess] = []
        self.server: FulcioServer | None = None
        self.root_pem = ""

    def __enter__(self) -> LocalFulcio:
        try:
            self.start()
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

    def _started(self, process: ManagedProcess) -> ManagedProcess:
        self.processes.append(process)
        process.start()
        return process

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        logs = self.run_dir / "logs"
        holder = ManagedProcess(
            "fulcio-netns",
            ["unshare", "--net", "--mount", "--propagation", "private", "sleep", "infinity"],
            log_path=logs / "fulcio-netns.log",
            ready=lambda: netns.entered(holder.pid or 0),
            ready_timeout=10,
        )
        self._started(holder)
        assert holder.pid is not None
        prefix = ["nsenter", f"--target={holder.pid}", "--net", "--mount", "--"]
        hosts = self.dir / "hosts"
        hosts.write_text(f"127.0.0.1 localhost {SA_HOST}\n")
        for step in (
            ["ip", "link", "set", "lo", "up"],
            ["mount", "--bind", str(hosts), "/etc/hosts"],
        ):
            done = subprocess.run([*prefix, *step], capture_output=True, text=True, timeout=30)
            if done.returncode != 0:
                raise EnvironmentNotReady(
                    f"setting up Fulcio's network namespace failed: {' '.join(step)}",
                    (done.stderr or done.stdout)[-2000:],
                )
        self.server = FulcioServer(self.run_dir, self.binary, self.timeouts, prefix, self.ca_file)
        http = self.server.ports["http"]
        self._started(
            ManagedProcess(
                "fulcio-forward",
                [
                    # By path, isolated: the forwarder is stdlib only (see localkms.TlsFront).
                    sys.executable,
                    "-I",
                    str(Path(forward.__file__)),
                    f"--netns-pid={holder.pid}",
                    f"--port={http}",
                    f"--reverse=443:{self.apiserver_port}",
                ],
                log_path=logs / "fulcio-forward.log",
            )
        )
        self._started(self.server.build())
        status, body = http_get(f"{self.url}/api/v1/rootCert", timeout=5)
        if status != 200 or "BEGIN CERTIFICATE" not in body:
            raise EnvironmentNotReady(f"Fulcio's root certificate: HTTP {status}", body[:500])
        self.root_pem = body.strip() + "\n"

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

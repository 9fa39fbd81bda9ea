"""kube-apiserver on loopback with a CA of its own, service-account keys and RBAC.

Every client (the user, the controllers, kwok, Kyverno) gets its own kubeconfig with a
client certificate naming who it is; all but the scheduler are in `system:masters`, which
spares an RBAC setup that would prove nothing about image admission.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from signcheck.localenv import pki
from signcheck.localenv.kubeconfig import write_kubeconfig
from signcheck.localenv.ports import HOST, free_port
from signcheck.localenv.probes import http_probe, ssl_context
from signcheck.localenv.process import Probe
from signcheck.localenv.services.base import Service
from signcheck.timeouts import Timeouts

SERVICE_CIDR = "10.96.0.0/16"
SA_HOST = "kubernetes.default.svc.cluster.local"
SA_ISSUER = f"https://{SA_HOST}"
MASTERS = "system:masters"


@dataclass(frozen=True)
class Identity:
    name: str
    user: str
    groups: Sequence[str]


NODE_NAME = "signcheck-node"
"""The real node's name (`--nodes real`); its kubelet authenticates as system:node:<name>."""

IDENTITIES = (
    Identity("admin", "signcheck-admin", (MASTERS,)),
    Identity("kubelet", f"system:node:{NODE_NAME}", ("system:nodes", MASTERS)),
    Identity("kube-proxy", "system:kube-proxy", (MASTERS,)),
    Identity("controller-manager", "system:kube-controller-manager", (MASTERS,)),
    Identity("scheduler", "system:kube-scheduler", ()),
    Identity("kwok", "kwok-controller", (MASTERS,)),
    # Kyverno recognises its own requests by its service account's username.
    Identity(
        "kyverno",
        "system:serviceaccount:kyverno:kyverno-admission-controller",
        ("system:serviceaccounts", "system:serviceaccounts:kyverno", MASTERS),
    ),
    Identity(
        "reports-controller",
        "system:serviceaccount:kyverno:kyverno-reports-controller",
        ("system:serviceaccounts", "system:serviceaccounts:kyverno", MASTERS),
    ),
)


class KubeAPIServer(Service):
    name = "kube-apiserver"
    tool = "kube-apiserver"
    # Its graceful shutdown drains for 1.4 s here; it keeps nothing of its own (etcd, which
    # stops after it, holds the state) and every client of the environment is stopping too.
    stop_grace = 0.0

    def __init__(
        self,
        run_dir: Path,
        binary: Path,
        timeouts: Timeouts,
        etcd_url: str,
        *,
        advertise: str | None = None,
    ) -> None:
        super().__init__(run_dir, binary, timeouts)
        self.etcd_url = etcd_url
        self.advertise = advertise
        """The real node's bridge address: pods (Kyverno installed in the cluster) reach the
        apiserver through the `kubernetes` Service, whose endpoint this becomes."""
        self.ports["https"] = free_port()
        self.pki_dir = self.dir / "pki"
        self.ca_path = self.pki_dir / "ca.crt"
        self.ca_key_path = self.pki_dir / "ca.key"
        self.sa_key_path = self.pki_dir / "sa.key"
        self.sa_pub_path = self.pki_dir / "sa.pub"
        self.kubeconfigs: dict[str, Path] = {}
        self.admin_cert: Path = self.pki_dir / "admin.crt"
        self.admin_key: Path = self.pki_dir / "admin.key"

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.ports['https']}"

    def kubeconfig(self, identity: str = "admin") -> Path:
        return self.kubeconfigs[identity]

    def prepare(self) -> None:
        ca = pki.new_ca("signcheck kubernetes CA")
        ca.write(self.pki_dir, "ca")
        serving = pki.issue(
            ca,
            "kube-apiserver",
            ips=[HOST, "10.96.0.1", *([self.advertise] if self.advertise else [])],
            # SA_HOST too: the issuer's name, which keyless signing's Fulcio reaches it by.
            dns=[
                *("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
                SA_HOST,
            ],
            server=True,
        )
        serving.write(self.pki_dir, "apiserver")
        # What the apiserver shows the kubelet for logs and exec (the real node's kubelet
        # accepts only client certificates of this CA): without it `pods/log` is refused.
        pki.issue(ca, "kube-apiserver-kubelet-client", organizations=[MASTERS], client=True).write(
            self.pki_dir, "kubelet-client"
        )
        pki.new_signing_key(self.pki_dir, "sa")
        for ident in IDENTITIES:
            client = pki.issue(ca, ident.user, organizations=ident.groups, client=True)
            if ident.name == "admin":
                client.write(self.pki_dir, "admin")
            self.kubeconfigs[ident.name] = write_kubeconfig(
                self.run_dir / "kubeconfigs" / f"{ident.name}.yaml",
                server=self.url,
                ca_pem=ca.cert_pem,
                client=client,
            )

    def argv(self) -> list[str]:
        p = self.pki_dir
        return [
            f"--etcd-servers={self.etcd_url}",
            *self._address_flags(),
            f"--secure-port={self.ports['https']}",
            f"--cert-dir={self.dir / 'certs'}",
            f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--kubelet-client-certificate={p / 'kubelet-client.crt'}",
            f"--kubelet-client-key={p / 'kubelet-client.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            f"--service-account-issuer={SA_ISSUER}",
            # The keyless scenarios' Fulcio discovers the issuer by its name (see
            # signcheck.localenv.services.fulcio); the default would name this process's
            # own address, which differs between the two node kinds.
            f"--service-account-jwks-uri={SA_ISSUER}/openid/v1/jwks",
            f"--service-account-key-file={self.sa_pub_path}",
            f"--service-account-signing-key-file={self.sa_key_path}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ]

    def _address_flags(self) -> list[str]:
        if self.advertise is None:
            # The `kubernetes` Service cannot point at a loopback address (the apiserver
            # rejects its own Endpoints every few seconds); nothing in-cluster needs it here.
            return [
                f"--bind-address={HOST}",
                f"--advertise-address={HOST}",
                "--endpoint-reconciler-type=none",
            ]
        # Inside the run's network namespace, whose only addresses are loopback (the
        # forwarders and the node's daemons) and the bridge (pods, via the Service).
        # Logs and exec go to the kubelet by its address: its name would be asked of the
        # host's name server.
        return [
            "--bind-address=0.0.0.0",
            f"--advertise-address={self.advertise}",
            "--kubelet-preferred-address-types=InternalIP",
        ]

    def ready(self) -> Probe:
        ctx = ssl_context(self.ca_path, self.admin_cert, self.admin_key)
        return http_probe(f"{self.url}/readyz", context=ctx)

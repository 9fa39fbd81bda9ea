"""The Kyverno admission controller and reports controller, out of cluster.

Upstream's own out-of-cluster recipe: `--serverIP` makes Kyverno register its webhooks
with `https://<serverIP>/...` URLs instead of a Service. Its CA and serving pair (the two
named Secrets) are made before it starts (`tls_secrets`), as a cluster with cert-manager
would: Kyverno's own certificate controller makes them only on retry ticks of one second
each, and its webhook server answers nothing until then (about 3 s of every boot). Every
listener is bound to loopback on a port of this run: the webhook server, the Prometheus
endpoint (which listens even with `--disableMetrics`) and controller-runtime's metrics.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from signcheck.localenv import pki
from signcheck.localenv.ports import HOST, free_port
from signcheck.localenv.probes import http_probe, ssl_context
from signcheck.localenv.process import Probe
from signcheck.localenv.services.base import Service
from signcheck.timeouts import Timeouts

NAMESPACE = "kyverno"
ADMISSION_SA = "kyverno-admission-controller"
BACKGROUND_SA = "kyverno-background-controller"
REPORTS_SA = "kyverno-reports-controller"
CONFIGMAP = "kyverno"
METRICS_CONFIGMAP = "kyverno-metrics"
CA_SECRET = "kyverno-svc.kyverno.svc.kyverno-tls-ca"
TLS_SECRET = "kyverno-svc.kyverno.svc.kyverno-tls-pair"
PULL_SECRET = "regcred"
"""The seed's `imagePullSecrets.regcred` (its Helm chart names the Secret after the key)."""
BACKGROUND_SCAN_INTERVAL = "15s"
"""The reports controller's `--backgroundScanInterval` (Kyverno's default: 1h), so a
background scan (BG-01) comes again within the run. Each interval it reads and scans every
pod and workload again against each policy with `background: true` (only BG-01's two):
measured at 5 s over 150 pods, 7 to 14 % of a core per such policy (nothing without one),
so the interval is as long as BG-01's timing allows (the next scan, plus the 10 s before a
PolicyReport shows it, must come before the run's end)."""


def exception_namespace(run_id: str) -> str:
    """The one namespace whose PolicyExceptions Kyverno accepts (`--exceptionNamespace`): a
    namespace of this run (named like its others, `sc-<id suffix>-...`), so exceptions are on
    for the EXC scenarios and nobody else's namespace can exempt anything."""
    return f"sc-{run_id.rsplit('-', 1)[-1]}-exceptions"


def _sa(name: str) -> str:
    return f"system:serviceaccount:{NAMESPACE}:{name}"


def kyverno_configmap() -> dict[str, object]:
    """Kyverno's own configuration, as its Helm chart would write it for this cluster."""
    filters = [
        "[Event,*,*]",
        "[*/*,kube-system,*]",
        "[*/*,kube-public,*]",
        "[*/*,kube-node-lease,*]",
        f"[*/*,{NAMESPACE},*]",
        "[Node,*,*]",
        "[Node/?*,*,*]",
        "[APIService,*,*]",
        "[APIService/?*,*,*]",
        "[TokenReview,*,*]",
        "[SubjectAccessReview,*,*]",
        "[SelfSubjectAccessReview,*,*]",
        "[Binding,*,*]",
        "[Pod/binding,*,*]",
        "[ReplicaSet,*,*]",
        "[ReplicaSet/?*,*,*]",
        "[EphemeralReport,*,*]",
        "[ClusterEphemeralReport,*,*]",
    ]
    webhooks = (
        '{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name",'
        f'"operator":"NotIn","values":["kube-system","{NAMESPACE}"]}}]}}}}'
    )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIGMAP, "namespace": NAMESPACE},
        "data": {
            "resourceFilters": "".join(filters),
            "webhooks": webhooks,
            "excludeGroups": "system:nodes",
            "defaultRegistry": "docker.io",
            "enableDefaultRegistryMutation": "true",
            "generateSuccessEvents": "false",
        },
    }


def tls_secrets(namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """The CA and serving-pair Secrets in the layout Kyverno's certificate controller writes
    (type kubernetes.io/tls, labelled as Kyverno's, so it renews them itself when due), with
    Kyverno's own validity periods: it finds them valid and leaves them as they are. The
    same for Kyverno out of cluster and for the chart's (its Service `kyverno-svc`)."""
    ca = pki.new_ca(f"*.{namespace}.svc", validity=dt.timedelta(days=365))
    dns = ["kyverno-svc", f"kyverno-svc.{namespace}", f"kyverno-svc.{namespace}.svc"]
    pair = pki.issue(ca, dns[-1], dns=dns, ips=[HOST], server=True, validity=dt.timedelta(days=150))

    def secret(name: str, cert: pki.CertKey) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"cert.kyverno.io/managed-by": "kyverno"},
            },
            "type": "kubernetes.io/tls",
            "data": {
                "tls.crt": base64.b64encode(cert.cert_pem).decode(),
                "tls.key": base64.b64encode(cert.key_pem).decode(),
            },
        }

    prefix = f"kyverno-svc.{namespace}.svc"
    return [secret(f"{prefix}.kyverno-tls-ca", ca), secret(f"{prefix}.kyverno-tls-pair", pair)]


OFFLINE_PROXY = {
    key: value
    for name, value in (
        ("HTTPS_PROXY", "http://127.0.0.1:9"),
        ("HTTP_PROXY", "http://127.0.0.1:9"),
        ("NO_PROXY", "127.0.0.1,localhost,::1"),
    )
    for key in (name, name.lower())
}
"""Every request Kyverno makes beyond loopback goes to a closed loopback port instead, so it
fails at once without a DNS lookup. Kyverno v1.18.2 fetches the public Sigstore trust root
(TUF, tuf-repo-cdn.sigstore.dev) for some verifications whatever `--enableTuf` says; the
run's services only ever talk to loopback (the registry, the API server: Go never proxies
loopback addresses, and NO_PROXY says so too)."""


def _common_env(
    pod_name: str, service_account: str, ca_bundle: Path | None, home: Path
) -> dict[str, str]:
    env = {
        "KYVERNO_NAMESPACE": NAMESPACE,
        "KYVERNO_SERVICEACCOUNT_NAME": service_account,
        "KYVERNO_DEPLOYMENT": service_account,
        "KYVERNO_POD_NAME": pod_name,
        "KYVERNO_SVC": "kyverno-svc",
        "INIT_CONFIG": CONFIGMAP,
        "METRICS_CONFIG": METRICS_CONFIGMAP,
        # A user's ~/.docker/config.json must not leak credentials into the run.
        "HOME": str(home),
        "OTEL_TRACES_EXPORTER": "none",
        **OFFLINE_PROXY,
    }
    if ca_bundle is not None:
        # Go reads this instead of the system bundle: the registry's CA plus the system's.
        env["SSL_CERT_FILE"] = str(ca_bundle)
    return env


def _registry_flags(insecure_registry: bool, pull_secret: str | None) -> list[str]:
    flags = ["--registryCredentialHelpers="]
    if insecure_registry:
        flags.append("--allowInsecureRegistry=true")
    if pull_secret:
        flags.append(f"--imagePullSecrets={pull_secret}")
    return flags


class Kyverno(Service):
    name = "kyverno"
    tool = "kyverno"
    # Its graceful shutdown takes 1.1 s here (servers drained, lease released) and leaves
    # nothing behind that a stopping environment needs; its webhook configurations are
    # deleted before it stops (`LocalEnv.stop`).
    stop_grace = 0.0

    def __init__(
        self,
        run_dir: Path,
        binary: Path,
        timeouts: Timeouts,
        kubeconfig: Path,
        *,
        run_id: str,
        insecure_registry: bool,
        pull_secret: str | None,
        ca_bundle: Path | None,
    ) -> None:
        super().__init__(run_dir, binary, timeouts)
        self.kubeconfig = kubeconfig
        self.run_id = run_id
        self.insecure_registry = insecure_registry
        self.pull_secret = pull_secret
        self.ca_bundle = ca_bundle
        self.ports["webhook"] = free_port()
        self.ports["metrics"] = free_port()

    @property
    def server(self) -> str:
        return f"{HOST}:{self.ports['webhook']}"

    def argv(self) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--serverIP={self.server}",
            f"--webhookServerHost={HOST}",
            f"--webhookServerPort={self.ports['webhook']}",
            f"--caSecretName={CA_SECRET}",
            f"--tlsSecretName={TLS_SECRET}",
            # Kyverno generates its CA and serving pair at start: ECDSA keys are instant.
            "--tlsKeyAlgorithm=ECDSA",
            f"--backgroundServiceAccountName={_sa(BACKGROUND_SA)}",
            f"--reportsServiceAccountName={_sa(REPORTS_SA)}",
            f"--metricsHost={HOST}",
            f"--metricsPort={self.ports['metrics']}",
            "--disableMetrics=true",
            "--controllerRuntimeMetricsAddress=0",
            "--generateValidatingAdmissionPolicy=false",
            "--generateMutatingAdmissionPolicy=false",
            "--enableTuf=false",
            "--disableLogColor=true",
            # Off by default in Kyverno 1.19; on, scoped to the run, for the EXC scenarios.
            "--enablePolicyException=true",
            f"--exceptionNamespace={exception_namespace(self.run_id)}",
            *_registry_flags(self.insecure_registry, self.pull_secret),
        ]

    def env(self) -> Mapping[str, str]:
        return _common_env(f"{self.run_id}-admission", ADMISSION_SA, self.ca_bundle, self.dir)

    ready_timeout_name = "kyverno_ready"

    def ready(self) -> Probe:
        # The webhook server answers only once the leader has written the TLS secret; the
        # environment checks registration and a canary policy after this.
        return http_probe(f"https://{self.server}/health/liveness", context=ssl_context())


class ReportsController(Service):
    name = "reports-controller"
    tool = "reports-controller"

    def __init__(
        self,
        run_dir: Path,
        binary: Path,
        timeouts: Timeouts,
        kubeconfig: Path,
        *,
        run_id: str,
        insecure_registry: bool,
        pull_secret: str | None,
        ca_bundle: Path | None,
        ready: Probe,
    ) -> None:
        super().__init__(run_dir, binary, timeouts)
        self.kubeconfig = kubeconfig
        self.run_id = run_id
        self.insecure_registry = insecure_registry
        self.pull_secret = pull_secret
        self.ca_bundle = ca_bundle
        self._ready = ready
        self.ports["metrics"] = free_port()

    def argv(self) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--metricsHost={HOST}",
            f"--metricsPort={self.ports['metrics']}",
            "--disableMetrics=true",
            "--enableTuf=false",
            "--disableLogColor=true",
            f"--backgroundScanInterval={BACKGROUND_SCAN_INTERVAL}",
            *_registry_flags(self.insecure_registry, self.pull_secret),
        ]

    def env(self) -> Mapping[str, str]:
        return _common_env(f"{self.run_id}-reports", REPORTS_SA, self.ca_bundle, self.dir)

    ready_timeout_name = "kyverno_ready"

    def ready(self) -> Probe:
        # It serves nothing; holding its leader lease shows it is connected and running.
        return self._ready

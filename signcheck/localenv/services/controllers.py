"""kube-controller-manager and kube-scheduler, each on a loopback port of its own.

The controller-manager runs only the controllers the suite relies on: ServiceAccounts and
their tokens (no `default` ServiceAccount means pods are rejected before Kyverno sees
them), namespace deletion, garbage collection, node lifecycle, the workload controllers, and,
on a real node, what a Helm-installed Kyverno needs (ClusterRole aggregation, endpoints).
"""

from __future__ import annotations

from pathlib import Path

from signcheck.localenv.ports import HOST, free_port
from signcheck.localenv.probes import http_probe, ssl_context
from signcheck.localenv.process import Probe
from signcheck.localenv.services.base import Service
from signcheck.timeouts import Timeouts

CONTROLLERS = (
    "serviceaccount-token-controller",
    "serviceaccount-controller",
    "root-ca-certificate-publisher-controller",
    "namespace-controller",
    "garbage-collector-controller",
    "pod-garbage-collector-controller",
    # The apiserver taints every new Node not-ready; only this controller lifts the taint
    # once kwok reports the node Ready, and keeps the nodes honest about kwok's heartbeats.
    "node-lifecycle-controller",
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "daemonset-controller",
    "job-controller",
    "cronjob-controller",
    "ttl-after-finished-controller",
)
IN_CLUSTER_CONTROLLERS = (
    # What a Helm-installed Kyverno relies on (the real node): its chart's ClusterRoles are
    # aggregated from labelled parts, and its webhook Service reaches its pod through
    # EndpointSlices (kube-proxy) and Endpoints. Off on kwok, where nothing runs in-cluster.
    "clusterrole-aggregation-controller",
    "endpointslice-controller",
    "endpoints-controller",
)


class _Component(Service):
    """Both share the secure-serving flags: bind loopback, a free port, certs in the run dir."""

    def __init__(self, run_dir: Path, binary: Path, timeouts: Timeouts, kubeconfig: Path) -> None:
        super().__init__(run_dir, binary, timeouts)
        self.kubeconfig = kubeconfig
        self.ports["https"] = free_port()

    def serving_flags(self) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            f"--bind-address={HOST}",
            f"--secure-port={self.ports['https']}",
            f"--cert-dir={self.dir / 'certs'}",
            # One instance per run: waiting on a lease would only slow the boot.
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ]

    def ready(self) -> Probe:
        return http_probe(f"https://{HOST}:{self.ports['https']}/healthz", context=ssl_context())


class KubeControllerManager(_Component):
    name = "kube-controller-manager"
    tool = "kube-controller-manager"

    def __init__(
        self,
        run_dir: Path,
        binary: Path,
        timeouts: Timeouts,
        kubeconfig: Path,
        *,
        sa_key: Path,
        root_ca: Path,
        in_cluster: bool = False,
    ) -> None:
        super().__init__(run_dir, binary, timeouts, kubeconfig)
        self.sa_key = sa_key
        self.root_ca = root_ca
        self.controllers = CONTROLLERS + (IN_CLUSTER_CONTROLLERS if in_cluster else ())

    def argv(self) -> list[str]:
        return [
            *self.serving_flags(),
            f"--controllers={','.join(self.controllers)}",
            f"--service-account-private-key-file={self.sa_key}",
            f"--root-ca-file={self.root_ca}",
            "--use-service-account-credentials=false",
        ]


class KubeScheduler(_Component):
    name = "kube-scheduler"
    tool = "kube-scheduler"

    def argv(self) -> list[str]:
        return self.serving_flags()

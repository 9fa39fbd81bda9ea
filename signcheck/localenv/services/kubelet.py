"""kubelet and kube-proxy of the real node (`--nodes real`), inside the run's namespace.

The settings that mattered on this kind of machine (REAL-NODE-NOTES): cgroup v1 needs
`failCgroupV1: false`; the cgroupfs driver (no systemd here); the node's address is the
bridge's, and `resolvConf` names loopback; logs and state under the run dir (the tmpfs over
/var/lib and /var/log takes what kubelet insists on writing there); kube-proxy in iptables
mode with `conntrack.maxPerCore: 0`, so it leaves host-wide conntrack settings alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from signcheck.localenv.ports import free_port
from signcheck.localenv.probes import http_probe
from signcheck.localenv.process import Probe
from signcheck.localenv.services.base import Service
from signcheck.timeouts import Timeouts


class Kubelet(Service):
    name = "kubelet"
    tool = "kubelet"

    def __init__(
        self,
        run_dir: Path,
        binary: Path,
        timeouts: Timeouts,
        *,
        kubeconfig: Path,
        node_name: str,
        node_ip: str,
        runtime_socket: Path,
        resolv_conf: Path,
        client_ca: Path,
        cgroup_root: str,
    ) -> None:
        super().__init__(run_dir, binary, timeouts)
        self.cgroup_root = cgroup_root
        self.kubeconfig = kubeconfig
        self.node_name = node_name
        self.node_ip = node_ip
        self.runtime_socket = runtime_socket
        self.resolv_conf = resolv_conf
        self.client_ca = client_ca
        self.ports["kubelet"] = free_port()
        self.ports["healthz"] = free_port()
        self.config_path = self.dir / "config.json"

    def prepare(self) -> None:
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "address": self.node_ip,
            "port": self.ports["kubelet"],
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": self.ports["healthz"],
            "containerRuntimeEndpoint": f"unix://{self.runtime_socket}",
            "resolvConf": str(self.resolv_conf),
            "podLogsDir": str(self.dir / "pod-logs"),
            "failSwapOn": False,
            "serializeImagePulls": False,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(self.client_ca)},
            },
            "authorization": {"mode": "AlwaysAllow"},
            # The run's tmpfs and small disk are not a reason to evict the suite's pods.
            "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "enforceNodeAllocatable": [],
            "cgroupsPerQOS": True,
            # Pods under a cgroup of the run's own: teardown finds every container there.
            "cgroupRoot": self.cgroup_root,
            "registerNode": True,
        }
        self.config_path.write_text(json.dumps(config, indent=2))

    def argv(self) -> list[str]:
        return [
            f"--config={self.config_path}",
            f"--kubeconfig={self.kubeconfig}",
            # Its sockets (pod resources, plugins) need short paths: the namespace's private
            # tmpfs over /var/lib, not the run dir.
            "--root-dir=/var/lib/kubelet",
            f"--cert-dir={self.dir / 'pki'}",
            f"--node-ip={self.node_ip}",
            f"--hostname-override={self.node_name}",
            # The VM lacks CAP_SYS_RESOURCE: lowering its own OOM score would fail.
            "--oom-score-adj=0",
            "--v=1",
        ]

    def ready(self) -> Probe:
        return http_probe(f"http://127.0.0.1:{self.ports['healthz']}/healthz")


class KubeProxy(Service):
    name = "kube-proxy"
    tool = "kube-proxy"

    def __init__(
        self,
        run_dir: Path,
        binary: Path,
        timeouts: Timeouts,
        *,
        kubeconfig: Path,
        node_name: str,
        cluster_cidr: str,
    ) -> None:
        super().__init__(run_dir, binary, timeouts)
        self.kubeconfig = kubeconfig
        self.node_name = node_name
        self.cluster_cidr = cluster_cidr
        self.ports["healthz"] = free_port()
        self.ports["metrics"] = free_port()
        self.config_path = self.dir / "config.json"

    def prepare(self) -> None:
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(self.kubeconfig)},
            "hostnameOverride": self.node_name,
            "clusterCIDR": self.cluster_cidr,
            "healthzBindAddress": f"127.0.0.1:{self.ports['healthz']}",
            "metricsBindAddress": f"127.0.0.1:{self.ports['metrics']}",
            "oomScoreAdj": 0,
            # 0: leave the host-wide conntrack table size alone (sysctls we must not touch).
            "conntrack": {"maxPerCore": 0},
        }
        self.config_path.write_text(json.dumps(config, indent=2))

    def argv(self) -> list[str]:
        return [f"--config={self.config_path}", "--v=1"]

    def ready(self) -> Probe:
        return http_probe(f"http://127.0.0.1:{self.ports['healthz']}/healthz", ok=range(200, 600))

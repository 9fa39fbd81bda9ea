"""Run inside the run's namespaces by test_realnode.py: a control plane, a registry holding
the pause image, and a real node (containerd, kubelet, kube-proxy); then a pod that really
runs. Prints one JSON line of what it saw, and tears everything down whatever happened."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from signcheck.clients.k8s import Cluster, pod
from signcheck.clients.oci import OciClient
from signcheck.localenv import nodeimage
from signcheck.localenv.netns import Addresses
from signcheck.localenv.process import ManagedProcess
from signcheck.localenv.realnode import NodeSpec, RealNode, pod_pids
from signcheck.localenv.services.apiserver import NODE_NAME, KubeAPIServer
from signcheck.localenv.services.controllers import KubeControllerManager, KubeScheduler
from signcheck.localenv.services.etcd import Etcd
from signcheck.localenv.services.registry import Registry
from signcheck.target import Registry as RegistryTarget
from signcheck.timeouts import Timeouts
from signcheck.tools import pins
from signcheck.wait import until

TOOLS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "registry",
    "containerd",
    "containerd-shim-runc-v2",
    "kubelet",
    "kube-proxy",
    "kyvernopre",
)


def main(run_dir: Path, resolv_conf: Path) -> dict[str, object]:
    t = Timeouts.from_env()
    paths = {name: pins.path_of(name) for name in TOOLS}
    seen: dict[str, object] = {}
    procs: list[ManagedProcess] = []
    node: RealNode | None = None
    try:
        reg = Registry(run_dir, paths["registry"], t, auth=False, tls=False)
        etcd = Etcd(run_dir, paths["etcd"], t, seed=None)
        for svc in (reg, etcd):
            procs.append(svc.build())
            procs[-1].start()
        api = KubeAPIServer(run_dir, paths["kube-apiserver"], t, etcd.url)
        procs.append(api.build())
        procs[-1].start()
        kcm = KubeControllerManager(
            run_dir,
            paths["kube-controller-manager"],
            t,
            api.kubeconfig("controller-manager"),
            sa_key=api.sa_key_path,
            root_ca=api.ca_path,
        )
        sched = KubeScheduler(run_dir, paths["kube-scheduler"], t, api.kubeconfig("scheduler"))
        for svc in (kcm, sched):
            procs.append(svc.build())
            procs[-1].start()
        client = OciClient(RegistryTarget(reg.host, "http"))
        pause = nodeimage.push_pause(client, f"{reg.host}/signcheck/pause")
        a = Addresses()
        node = RealNode(
            run_dir,
            paths,
            t,
            NodeSpec(
                name=NODE_NAME,
                node_ip=a.bridge_ip,
                bridge="cni0",
                pod_cidr=a.pod_cidr,
                service_cidr=a.service_cidr,
                sandbox_image=pause.by_tag,
                kubelet_kubeconfig=api.kubeconfig("kubelet"),
                proxy_kubeconfig=api.kubeconfig("kube-proxy"),
                client_ca=api.ca_path,
                resolv_conf=resolv_conf,
                plain_http_registries=(reg.host,),
            ),
        )
        started = time.monotonic()
        node.start()
        cluster = Cluster(api.kubeconfig("admin"))

        def node_ready() -> bool:
            n = cluster.core.read_node(NODE_NAME)
            conds = {c.type: c.status for c in (n.status.conditions or [])}
            seen["conditions"] = conds
            return conds.get("Ready") == "True"

        until(node_ready, what="the real node to be Ready", timeout=90, interval=0.5)
        seen["node_ready_s"] = round(time.monotonic() - started, 1)
        cluster.create_namespace("realnode", "selftest")
        created = cluster.create(pod("p", "realnode", pause.by_digest, "selftest"))
        seen["admitted"] = created.admitted
        running = cluster.wait_pod_phase("realnode", "p", "Running", timeout=90)
        status = running.get("status") or {}
        statuses = status.get("container_statuses") or [{}]
        seen["phase"] = status.get("phase")
        seen["container_id"] = statuses[0].get("container_id")
        seen["pod_ip"] = status.get("pod_ip")
        # A pinned binary as an image FROM scratch (how the chart's Kyverno will run): the
        # static kyverno-init program starts on the node and exits by itself.
        kyvpre = nodeimage.push_binary_image(
            client, f"{reg.host}/signcheck-node/kyvernopre", "v1", paths["kyvernopre"], "kyvernopre"
        )
        job = pod("init", "realnode", kyvpre.by_digest, "selftest")
        job["spec"]["restartPolicy"] = "Never"
        job["spec"]["containers"][0]["args"] = ["--help"]
        cluster.create(job)
        done = until(
            lambda: (
                (
                    cluster.core.read_namespaced_pod("init", "realnode").status.phase
                    in ("Succeeded", "Failed")
                )
                or None
            ),
            what="the kyvernopre pod to finish",
            timeout=90,
            interval=0.5,
        )
        finished = cluster.core.read_namespaced_pod("init", "realnode").status
        term = finished.container_statuses[0].state.terminated
        seen["binary_image"] = {"phase": finished.phase, "reason": term.reason if term else None}
        del done
        # The container as the kernel sees it: processes in the run's pod cgroups.
        seen["processes"] = sorted(
            Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            for pid in pod_pids(node.cgroup)
        )
    except Exception as err:
        seen["error"] = f"{type(err).__name__}: {err}"
    finally:
        if node is not None:
            seen["teardown_problems"] = node.stop()
        for proc in reversed(procs):
            proc.stop()
    return seen


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]))), flush=True)

"""The real node (`--nodes real`): containerd, kubelet and kube-proxy, started and stopped
inside the run's network and mount namespace (the caller is already in it).

Pods get their cgroups under a cgroup of the run's own (`cgroupRoot`), in every v1
hierarchy, so teardown finds every container process there, whatever state kubelet and
containerd were left in: it kills them, stops the daemons and the shims (found by the run
directory in their command line), and removes the cgroups bottom-up. The overlay mounts and
pod network namespaces live in the run's mount namespace and go with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from signcheck.clients.oci import OciClient
from signcheck.errors import ConfigError
from signcheck.localenv import forward, nodeimage
from signcheck.localenv.netns import BRIDGE, NetNs
from signcheck.localenv.process import ManagedProcess
from signcheck.localenv.services.apiserver import NODE_NAME, KubeAPIServer
from signcheck.localenv.services.base import Service
from signcheck.localenv.services.containerd import Containerd, cni_bin_dir, runc_path
from signcheck.localenv.services.kubelet import Kubelet, KubeProxy
from signcheck.localenv.services.registry import USERNAME, Registry
from signcheck.timeouts import Timeouts

CGROUP_BASE = Path("/sys/fs/cgroup")


def hierarchies() -> list[Path]:
    """Every mounted hierarchy: the v1 controllers kubelet checks, and the hybrid v2
    `unified` one, where it makes the pods' cgroups too."""
    return [p for p in sorted(CGROUP_BASE.iterdir()) if p.is_dir() and not p.is_symlink()]


def make_cgroups(name: str) -> None:
    for h in hierarchies():
        (h / name).mkdir(exist_ok=True)


def _tree(root: Path) -> list[Path]:
    """`root` and every cgroup under it, deepest first; cgroups vanish while we look (the
    kernel and kubelet remove them), so a missing one is simply skipped."""
    found = [Path(d) for d, _, _ in os.walk(root, onerror=lambda err: None)]
    return sorted(found, key=lambda p: -len(p.parts))


def _procs(d: Path) -> list[int]:
    try:
        return [int(x) for x in (d / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def pod_pids(name: str) -> set[int]:
    """Every process in the run's pod cgroups (the pids hierarchy lists them all)."""
    root = CGROUP_BASE / "pids" / name
    if not root.is_dir():
        return set()
    return {pid for d in _tree(root) for pid in _procs(d)}


def remove_cgroups(name: str, timeout: float = 10) -> list[str]:
    """Kill every process under the run's cgroups and remove them; returns what is left."""
    left: list[str] = []
    for h in hierarchies():
        root = h / name
        if not root.is_dir():
            continue
        deadline = time.monotonic() + timeout
        while True:
            pids = {pid for d in _tree(root) for pid in _procs(d)}
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if not pids or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for d in _tree(root):
            with contextlib.suppress(OSError):
                d.rmdir()
        if root.exists():
            left.append(str(root))
    return left


def kill_shims(run_dir: Path) -> list[int]:
    """containerd's shims outlive containerd: found by the run id in their command line
    (the containerd socket they are given names it)."""
    killed = []
    marker = run_dir.name.encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"containerd-shim" in cmdline and marker in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)
                killed.append(int(proc.name))
    return killed


def reap_node(run_dir: Path) -> list[str]:
    """What a killed real-node run left beyond its recorded processes (nothing for kwok)."""
    lines = []
    if shims := kill_shims(run_dir):
        lines.append(f"killed containerd shims {shims}")
    cgroup = f"signcheck-{run_dir.name}"
    if any((h / cgroup).exists() for h in hierarchies()):
        left = remove_cgroups(cgroup)
        lines.append(f"removed cgroup {cgroup}" + (f" (left: {left})" if left else ""))
    return lines


@dataclass(frozen=True)
class NodeSpec:
    name: str
    node_ip: str
    bridge: str
    pod_cidr: str
    service_cidr: str
    sandbox_image: str
    kubelet_kubeconfig: Path
    proxy_kubeconfig: Path
    client_ca: Path
    resolv_conf: Path
    plain_http_registries: tuple[str, ...] = ()
    registry_auth: dict[str, tuple[str, str]] = field(default_factory=dict)
    registry_cas: dict[str, Path] = field(default_factory=dict)
    """The CA each TLS registry's certificate is issued by (the run's own registry's)."""


def check_prerequisites() -> tuple[Path, Path]:
    runc, cni = runc_path(), cni_bin_dir()
    missing = [n for n, v in (("runc", runc), ("containernetworking-plugins", cni)) if v is None]
    if missing:
        raise ConfigError(
            f"the real node needs {' and '.join(missing)}: apt-get install runc "
            "containernetworking-plugins iptables (Debian)"
        )
    assert runc is not None and cni is not None
    return runc, cni


class RealNode:
    """`node = RealNode(run_dir, paths, timeouts, spec); node.start(); ...; node.stop()`."""

    def __init__(
        self,
        run_dir: Path,
        paths: dict[str, Path],
        timeouts: Timeouts,
        spec: NodeSpec,
        prefix: tuple[str, ...] = (),
    ) -> None:
        runc, cni = check_prerequisites()
        self.run_dir = run_dir
        self.spec = spec
        self.cgroup = f"signcheck-{run_dir.name}"
        self.containerd = Containerd(
            run_dir,
            paths["containerd"],
            timeouts,
            shim=paths["containerd-shim-runc-v2"],
            runc=runc,
            cni_bin=cni,
            bridge=spec.bridge,
            pod_cidr=spec.pod_cidr,
            service_cidr=spec.service_cidr,
            sandbox_image=spec.sandbox_image,
            plain_http_registries=spec.plain_http_registries,
            registry_auth=spec.registry_auth,
            registry_cas=spec.registry_cas,
        )
        self.kubelet = Kubelet(
            run_dir,
            paths["kubelet"],
            timeouts,
            kubeconfig=spec.kubelet_kubeconfig,
            node_name=spec.name,
            node_ip=spec.node_ip,
            runtime_socket=self.containerd.socket,
            resolv_conf=spec.resolv_conf,
            client_ca=spec.client_ca,
            cgroup_root=f"/{self.cgroup}",
        )
        self.proxy = KubeProxy(
            run_dir,
            paths["kube-proxy"],
            timeouts,
            kubeconfig=spec.proxy_kubeconfig,
            node_name=spec.name,
            cluster_cidr=spec.pod_cidr,
        )
        for svc in (self.containerd, self.kubelet, self.proxy):
            svc.prefix = prefix
        self.processes: list[ManagedProcess] = []

    def start(self, on_spawn: Callable[[Service, ManagedProcess], None] | None = None) -> None:
        """Each daemon in turn; `on_spawn` sees it before its readiness is awaited (the
        environment records it, and forwards its ports when the caller is outside)."""
        make_cgroups(self.cgroup)
        for svc in (self.containerd, self.kubelet, self.proxy):
            proc = svc.build()
            proc.spawn()
            self.processes.append(proc)
            if on_spawn is not None:
                on_spawn(svc, proc)
            proc.wait_ready()

    def stop(self) -> list[str]:
        """Containers first (by cgroup), then the daemons, the shims, the cgroups."""
        problems: list[str] = []
        if self.kubelet.process is not None:
            # First, so it does not restart the containers killed next.
            self.kubelet.process.stop()
        problems += remove_cgroups(self.cgroup)
        for proc in reversed(self.processes):
            proc.stop()
        kill_shims(self.run_dir)
        problems += remove_cgroups(self.cgroup)
        return [f"cgroup left: {p}" for p in problems]


NODE_TOOLS = ("containerd", "containerd-shim-runc-v2", "kubelet", "kube-proxy")


class NodeWorld:
    """What `--nodes real` adds to the local environment: the run's namespaces, in which every
    service starts (`adopt`), a forwarder per service so its ports mean the same address on
    the host's loopback (`forward`: kubeconfigs and image references work on both sides), and
    the node itself (`boot_node`)."""

    def __init__(self, run_dir: Path, timeouts: Timeouts) -> None:
        self.run_dir = run_dir
        self.timeouts = timeouts
        self.ns = NetNs(run_dir)
        self.forwarders: list[ManagedProcess] = []
        self.node: RealNode | None = None

    def start(self) -> ManagedProcess:
        check_prerequisites()
        self.ns.start()
        self.ns.sysctl("net.ipv4.ip_forward", "1")
        assert self.ns.holder is not None
        return self.ns.holder

    def adopt(self, svc: Service) -> None:
        svc.prefix = tuple(self.ns.prefix)

    def forward(self, svc: Service) -> ManagedProcess | None:
        if not svc.ports:
            return None
        # Run by path, isolated: the forwarder is stdlib only, and importing the package
        # (the whole environment, the Kubernetes client) would cost ~50 MB per forwarder.
        script = Path(forward.__file__)
        argv = [sys.executable, "-I", str(script), f"--netns-pid={self.ns.pid}"]
        argv += [f"--port={p}" for p in svc.ports.values()]
        proc = ManagedProcess(
            f"{svc.name}-forward", argv, log_path=self.run_dir / "logs" / f"{svc.name}-forward.log"
        )
        proc.spawn()
        self.forwarders.append(proc)
        return proc

    def boot_node(
        self,
        paths: dict[str, Path],
        spec: NodeSpec,
        record: Callable[[ManagedProcess], None],
    ) -> None:
        self.node = RealNode(self.run_dir, paths, self.timeouts, spec, tuple(self.ns.prefix))

        def spawned(svc: Service, proc: ManagedProcess) -> None:
            record(proc)
            if fwd := self.forward(svc):
                record(fwd)

        self.node.start(spawned)

    def boot(
        self,
        paths: dict[str, Path],
        api: KubeAPIServer,
        registry: Registry,
        record: Callable[[ManagedProcess], None],
    ) -> None:
        """The pause image into the run's registry, then the node (containerd pulls with
        node-level credentials, as a cloud node does with its service account)."""
        creds = (USERNAME, registry.password) if registry.auth else None
        client = OciClient(registry.as_target())
        pause = nodeimage.push_pause(client, f"{registry.host}/signcheck-node/pause")
        addresses = self.ns.addresses
        spec = NodeSpec(
            name=NODE_NAME,
            node_ip=addresses.bridge_ip,
            bridge=BRIDGE,
            pod_cidr=addresses.pod_cidr,
            service_cidr=addresses.service_cidr,
            sandbox_image=pause.by_tag,
            kubelet_kubeconfig=api.kubeconfig("kubelet"),
            proxy_kubeconfig=api.kubeconfig("kube-proxy"),
            client_ca=api.ca_path,
            resolv_conf=self.ns.dir / "resolv.conf",
            plain_http_registries=() if registry.tls else (registry.host,),
            registry_auth={registry.host: creds} if creds else {},
            registry_cas={registry.host: registry.ca_path} if registry.ca_path else {},
        )
        self.boot_node(paths, spec, record)

    def stop_node(self) -> list[str]:
        node, self.node = self.node, None
        return node.stop() if node is not None else []

    def stop(self) -> list[str]:
        problems = self.stop_node()
        for proc in self.forwarders:
            proc.stop()
        self.ns.stop()
        return problems

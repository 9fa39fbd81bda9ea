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
import time
from dataclasses import dataclass
from pathlib import Path

from signcheck.errors import ConfigError
from signcheck.localenv.process import ManagedProcess
from signcheck.localenv.services.containerd import Containerd, cni_bin_dir, runc_path
from signcheck.localenv.services.kubelet import Kubelet, KubeProxy
from signcheck.timeouts import Timeouts

CGROUP_BASE = Path("/sys/fs/cgroup")


def hierarchies() -> list[Path]:
    """The cgroup v1 hierarchies kubelet checks (every mounted one but the v2 `unified`)."""
    return [
        p
        for p in sorted(CGROUP_BASE.iterdir())
        if p.is_dir() and p.name != "unified" and not p.is_symlink()
    ]


def make_cgroups(name: str) -> None:
    for h in hierarchies():
        (h / name).mkdir(exist_ok=True)


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
    return {pid for d in [root, *root.rglob("*")] if d.is_dir() for pid in _procs(d)}


def remove_cgroups(name: str, timeout: float = 10) -> list[str]:
    """Kill every process under the run's cgroups and remove them; returns what is left."""
    left: list[str] = []
    for h in hierarchies():
        root = h / name
        if not root.is_dir():
            continue
        deadline = time.monotonic() + timeout
        while True:
            pids = {pid for d in [root, *root.rglob("*")] if d.is_dir() for pid in _procs(d)}
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if not pids or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            root.rmdir()
        if root.exists():
            left.append(str(root))
    return left


def kill_shims(run_dir: Path) -> list[int]:
    """containerd's shims outlive containerd: found by the run dir in their command line."""
    killed = []
    marker = str(run_dir).encode()
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


@dataclass(frozen=True)
class NodeSpec:
    name: str
    node_ip: str
    bridge: str
    pod_cidr: str
    sandbox_image: str
    kubelet_kubeconfig: Path
    proxy_kubeconfig: Path
    client_ca: Path
    resolv_conf: Path
    plain_http_registries: tuple[str, ...] = ()


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
        self, run_dir: Path, paths: dict[str, Path], timeouts: Timeouts, spec: NodeSpec
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
            sandbox_image=spec.sandbox_image,
            plain_http_registries=spec.plain_http_registries,
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
        self.processes: list[ManagedProcess] = []

    def start(self) -> None:
        make_cgroups(self.cgroup)
        for svc in (self.containerd, self.kubelet, self.proxy):
            proc = svc.build()
            self.processes.append(proc)
            proc.start()

    def stop(self) -> list[str]:
        """Containers first (by cgroup), then the daemons, the shims, the cgroups."""
        problems: list[str] = []
        for proc in reversed(self.processes):
            if proc.name == "kubelet":
                proc.stop()
        problems += remove_cgroups(self.cgroup)
        for proc in reversed(self.processes):
            proc.stop()
        kill_shims(self.run_dir)
        problems += remove_cgroups(self.cgroup)
        return [f"cgroup left: {p}" for p in problems]

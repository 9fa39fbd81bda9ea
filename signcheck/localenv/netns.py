"""A network and mount namespace owned by one run: the real node's whole world.

The network rule says servers listen on loopback or on addresses inside a network namespace
the run creates itself, and nothing sends traffic anywhere else. A real node needs more than
loopback (pods, a bridge, the `kubernetes` Service), so the real-node environment lives in
a namespace of its own: one bridge (`cni0`, the pod range's first address), a route for the
service range through it, no interface to the outside and no default route, so no packet
can leave. The mount namespace is private: tmpfs over `/run`, `/var/lib` and `/var/log`
(kubelet and containerd hard-code paths there), `/etc/resolv.conf` naming loopback (a stray
name lookup stays local), and a sysfs that belongs to the new network namespace.

A holder process (`unshare ... sleep`) keeps the namespaces alive; every daemon is started
through `nsenter` (which execs, so the pid is the daemon's own). The host reaches services
inside only through `forward`: a listener on host loopback that connects from inside.
Nothing is written on the host outside the run directory.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from signcheck.errors import ConfigError, EnvironmentNotReady
from signcheck.localenv.process import ManagedProcess
from signcheck.wait import NotYet

BRIDGE = "cni0"

REQUIRED = ("unshare", "nsenter", "ip", "mount")


@dataclass(frozen=True)
class Addresses:
    bridge_cidr: str = "10.88.0.1/16"
    """The bridge's address (the node's and the apiserver's) in the pod range."""
    pod_cidr: str = "10.88.0.0/16"
    service_cidr: str = "10.96.0.0/16"

    @property
    def bridge_ip(self) -> str:
        return self.bridge_cidr.split("/", 1)[0]


def missing_tools() -> list[str]:
    return [t for t in REQUIRED if shutil.which(t) is None]


def entered(pid: int) -> bool:
    """Probe: the holder `pid` (`unshare ... sleep`) is in namespaces of its own. unshare execs
    sleep once they exist: until then its net namespace is still ours."""
    try:
        mine = Path("/proc/self/ns/net").readlink()
        theirs = Path(f"/proc/{pid}/ns/net").readlink()
    except OSError as err:
        raise NotYet(f"no namespace yet: {err}") from err
    if mine == theirs:
        raise NotYet("unshare has not entered the new namespaces yet")
    return True


class NetNs:
    """`with NetNs(run_dir) as ns: ns.run(["ip", "addr"]); ns.prefix + argv`."""

    def __init__(self, run_dir: Path, addresses: Addresses | None = None) -> None:
        self.run_dir = run_dir
        self.dir = run_dir / "netns"
        self.addresses = addresses or Addresses()
        self.holder: ManagedProcess | None = None

    # -- life -------------------------------------------------------------------------

    def __enter__(self) -> NetNs:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if missing := missing_tools():
            raise ConfigError(
                f"the real node needs {', '.join(missing)} on PATH: apt-get install "
                "util-linux iproute2 (Debian)"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.holder = ManagedProcess(
            "netns",
            ["unshare", "--net", "--mount", "--propagation", "private", "sleep", "infinity"],
            log_path=self.run_dir / "logs" / "netns.log",
            ready=self._entered,
            ready_timeout=10,
        )
        self.holder.start()
        self._configure()

    def _entered(self) -> bool:
        return entered(self.pid)

    def stop(self) -> None:
        if self.holder is not None:
            self.holder.stop()

    @property
    def pid(self) -> int:
        if self.holder is None or self.holder.pid is None:
            raise EnvironmentNotReady("the run's network namespace is not running")
        return self.holder.pid

    @property
    def alive(self) -> bool:
        return self.holder is not None and self.holder.alive

    # -- inside -----------------------------------------------------------------------

    @property
    def prefix(self) -> list[str]:
        """argv prefix that runs a command inside the namespaces (nsenter execs it)."""
        return ["nsenter", f"--target={self.pid}", "--net", "--mount", "--"]

    def run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*self.prefix, *argv], capture_output=True, text=True, timeout=30)
        if check and proc.returncode != 0:
            raise EnvironmentNotReady(
                f"setting up the run's network namespace failed: {' '.join(argv)}",
                (proc.stderr or proc.stdout)[-2000:],
            )
        return proc

    def _configure(self) -> None:
        a = self.addresses
        resolv = self.dir / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        steps = [
            ["ip", "link", "set", "lo", "up"],
            # The kernel here has no dummy interfaces: the bridge is the node's interface.
            ["ip", "link", "add", BRIDGE, "type", "bridge"],
            ["ip", "addr", "add", a.bridge_cidr, "dev", BRIDGE],
            ["ip", "link", "set", BRIDGE, "up"],
            # Service IPs go to the bridge, where kube-proxy's rules take them; nothing else
            # has a route: there is no default route.
            ["ip", "route", "add", a.service_cidr, "dev", BRIDGE],
            ["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run"],
            ["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/var/lib"],
            ["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/var/log"],
            ["mount", "--bind", str(resolv), "/etc/resolv.conf"],
        ]
        for step in steps:
            self.run(step)
        self._own_sysfs()

    def _own_sysfs(self) -> None:
        # A sysfs mounted in the new network namespace shows its interfaces (kubelet and the
        # CNI plugins read /sys/class/net); the cgroup hierarchy is moved aside and back so
        # the fresh sysfs does not hide it.
        aside = "/run/signcheck-cgroup"
        self.run(["mkdir", "-p", aside])
        self.run(["mount", "--rbind", "/sys/fs/cgroup", aside])
        self.run(["umount", "-l", "/sys"])
        self.run(["mount", "-t", "sysfs", "sysfs", "/sys"])
        self.run(["mount", "--move", aside, "/sys/fs/cgroup"])

    def sysctl(self, name: str, value: str) -> None:
        path = "/proc/sys/" + name.replace(".", "/")
        self.run(["sh", "-c", f"echo {value} > {path}"])

    def interfaces(self) -> list[str]:
        out = self.run(["ip", "-o", "link", "show"]).stdout
        return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line]

    def routes(self) -> list[str]:
        return [r for r in self.run(["ip", "route", "show"]).stdout.splitlines() if r]

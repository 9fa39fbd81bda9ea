"""containerd 2.2 for the real node, with its CNI configuration, inside the run's namespace.

The settings that mattered here (REAL-NODE-NOTES): `restrict_oom_score_adj` (the VM lacks
CAP_SYS_RESOURCE: without it every sandbox fails with "can't get final child's PID from
pipe: EOF"), cgroupfs (`SystemdCgroup = false`), Debian's runc, network namespaces of pods
under containerd's state dir, no AppArmor. Everything it stores lives under the run dir.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from signcheck.localenv.process import Probe
from signcheck.localenv.services.base import Service
from signcheck.timeouts import Timeouts
from signcheck.wait import NotYet

CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")


def cni_bin_dir() -> Path | None:
    """Debian's containernetworking-plugins (`/usr/lib/cni`), or the upstream layout."""
    for d in CNI_BIN_DIRS:
        if all((Path(d) / p).is_file() for p in CNI_PLUGINS):
            return Path(d)
    return None


def runc_path() -> Path | None:
    found = shutil.which("runc")
    return Path(found) if found else None


class Containerd(Service):
    name = "containerd"
    tool = "containerd"

    def __init__(
        self,
        run_dir: Path,
        binary: Path,
        timeouts: Timeouts,
        *,
        shim: Path,
        runc: Path,
        cni_bin: Path,
        bridge: str,
        pod_cidr: str,
        service_cidr: str,
        sandbox_image: str,
        plain_http_registries: tuple[str, ...] = (),
        registry_auth: dict[str, tuple[str, str]] | None = None,
        registry_cas: dict[str, Path] | None = None,
    ) -> None:
        super().__init__(run_dir, binary, timeouts)
        self.registry_auth = registry_auth or {}
        self.plain_http_registries = plain_http_registries
        self.registry_cas = registry_cas or {}
        self.shim = shim
        self.runc = runc
        self.cni_bin = cni_bin
        self.bridge = bridge
        self.pod_cidr = pod_cidr
        self.service_cidr = service_cidr
        self.sandbox_image = sandbox_image
        # In the run's private /run (a tmpfs of its mount namespace): a socket path must be
        # short (104 bytes), and run dirs are not. The run id in it names the run in every
        # shim's command line (`-address`), which is how a cleanup finds them.
        self.socket = Path(f"/run/signcheck-{run_dir.name}/containerd.sock")
        self.config_path = self.dir / "config.toml"
        self.cni_conf_dir = self.dir / "cni" / "net.d"
        self.certs_dir = self.dir / "certs.d"

    def prepare(self) -> None:
        self.cni_conf_dir.mkdir(parents=True, exist_ok=True)
        self.certs_dir.mkdir(parents=True, exist_ok=True)
        d = self.dir
        self.config_path.touch(mode=0o600)
        self.config_path.write_text(
            f"""version = 3
root = '{d / "root"}'
state = '{d / "state"}'

[grpc]
  address = '{self.socket}'

[ttrpc]
  address = '{self.socket}.ttrpc'

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '{self.sandbox_image}'
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = '{self.certs_dir}'

{self._auth_tables()}
  [plugins.'io.containerd.cri.v1.runtime']
    enable_selinux = false
    disable_apparmor = true
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '{self.runc}'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['{self.cni_bin}']
      conf_dir = '{self.cni_conf_dir}'

  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'
"""
        )
        (self.cni_conf_dir / "10-signcheck.conflist").write_text(json.dumps(self._cni(), indent=2))
        # containerd's per-registry hosts files: plain HTTP, or TLS with the registry's CA.
        hosts = {
            h: f'server = "http://{h}"\n\n[host."http://{h}"]\n' for h in self.plain_http_registries
        }
        for h, ca in self.registry_cas.items():
            hosts[h] = f'server = "https://{h}"\n\n[host."https://{h}"]\n  ca = "{ca}"\n'
        for host, text in hosts.items():
            d = self.certs_dir / host
            d.mkdir(parents=True, exist_ok=True)
            (d / "hosts.toml").write_text(text + '  capabilities = ["pull", "resolve"]\n')

    def _auth_tables(self) -> str:
        # Node-level pull credentials (deprecated in 2.2, gone in 2.3: then a kubelet
        # credential provider). The file is the run's own, 0600.
        out = []
        for host, (user, password) in self.registry_auth.items():
            out.append(
                f"    [plugins.'io.containerd.cri.v1.images'.registry.configs.'{host}'.auth]\n"
                f"      username = {json.dumps(user)}\n      password = {json.dumps(password)}"
            )
        return "\n".join(out)

    def _cni(self) -> dict[str, object]:
        return {
            "cniVersion": "1.0.0",
            "name": "signcheck",
            "plugins": [
                {
                    "type": "bridge",
                    # The run's own bridge, made before CNI runs (no dummy interfaces here).
                    "bridge": self.bridge,
                    "isGateway": True,
                    "hairpinMode": True,
                    # Nothing leaves the namespace: no masquerading to translate for.
                    "ipMasq": False,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.pod_cidr}]],
                        # Pods reach Services (the apiserver's `kubernetes` among them:
                        # Kyverno's reports controller) through the bridge, where
                        # kube-proxy's rules translate them; no default route.
                        "routes": [{"dst": self.pod_cidr}, {"dst": self.service_cidr}],
                        "dataDir": str(self.dir / "cni" / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
                {"type": "loopback"},
            ],
        }

    def argv(self) -> list[str]:
        return [f"--config={self.config_path}", "--log-level=info"]

    def env(self) -> dict[str, str]:
        # The shim is found on PATH; runc by the configured BinaryName.
        path = os.pathsep.join([str(self.shim.parent), "/usr/sbin", "/usr/bin", "/sbin", "/bin"])
        return {"PATH": path}

    def ready(self) -> Probe:
        def socket_there() -> bool:
            # Seen from outside the namespace through the process's own root.
            pid = self.process.pid if self.process is not None else None
            if (
                pid is None
                or not (Path(f"/proc/{pid}/root") / self.socket.relative_to("/")).exists()
            ):
                raise NotYet(f"{self.socket} not created yet")
            return True

        return socket_there

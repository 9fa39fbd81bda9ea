"""The run's own network and mount namespace (the real node's world): only its bridge and
loopback, no way out, private mounts, its own sysfs; reached from the host only through the
loopback forwarder; gone with its holder."""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

import pytest

from signcheck.localenv.netns import BRIDGE, NetNs, missing_tools
from signcheck.localenv.ports import free_port
from signcheck.localenv.probes import http_probe
from signcheck.localenv.process import ManagedProcess, is_alive

pytestmark = pytest.mark.integration

if os.geteuid() != 0 or missing_tools():
    pytest.skip("network namespaces need root and util-linux/iproute2", allow_module_level=True)


def test_only_the_bridge_and_loopback_and_no_route_out(tmp_path: Path) -> None:
    with NetNs(tmp_path) as ns:
        assert sorted(ns.interfaces()) == sorted(["lo", BRIDGE])
        routes = ns.routes()
        assert not [r for r in routes if r.startswith("default")], routes
        assert any(r.startswith(f"{ns.addresses.service_cidr} dev {BRIDGE}") for r in routes)
        assert any(r.startswith(f"{ns.addresses.pod_cidr} dev {BRIDGE}") for r in routes)
        pid = ns.pid
    assert not is_alive(pid), "the holder outlived the namespace's context"


def test_mounts_are_private_and_sysfs_is_the_namespaces(tmp_path: Path) -> None:
    marker = f"signcheck-netns-{os.getpid()}"
    host_resolv = Path("/etc/resolv.conf").read_bytes()
    with NetNs(tmp_path) as ns:
        ns.run(["sh", "-c", f"echo inside > /run/{marker} && echo x > /var/lib/{marker}"])
        assert ns.run(["cat", f"/run/{marker}"]).stdout == "inside\n"
        # Control: the host's /run does not see what was written inside.
        assert not Path(f"/run/{marker}").exists()
        assert not Path(f"/var/lib/{marker}").exists()
        assert ns.run(["cat", "/etc/resolv.conf"]).stdout.startswith("nameserver 127.0.0.1")
        assert sorted(ns.run(["ls", "/sys/class/net"]).stdout.split()) == sorted(["lo", BRIDGE])
        # The cgroup hierarchy survived the fresh sysfs (kubelet and runc need it).
        assert ns.run(["ls", "/sys/fs/cgroup"]).stdout.split()
        # Control: the host's resolv.conf is the host's, during the run and after it.
        assert Path("/etc/resolv.conf").read_bytes() == host_resolv
    assert Path("/etc/resolv.conf").read_bytes() == host_resolv


def test_the_forwarder_reaches_a_server_inside_from_host_loopback(tmp_path: Path) -> None:
    with NetNs(tmp_path) as ns:
        inner_port, outer_port = 8080, free_port()
        server = ManagedProcess(
            "inner-http",
            [
                *ns.prefix,
                sys.executable,
                "-m",
                "http.server",
                "--bind",
                ns.addresses.bridge_ip,
                str(inner_port),
                "--directory",
                str(tmp_path),
            ],
            log_path=tmp_path / "logs" / "inner-http.log",
        )
        forward = ManagedProcess(
            "forward",
            [
                sys.executable,
                "-m",
                "signcheck.localenv.forward",
                "--netns-pid",
                str(ns.pid),
                "--listen",
                str(outer_port),
                "--to",
                f"{ns.addresses.bridge_ip}:{inner_port}",
            ],
            log_path=tmp_path / "logs" / "forward.log",
            ready=http_probe(f"http://127.0.0.1:{outer_port}/"),
            ready_timeout=20,
        )
        (tmp_path / "hello.txt").write_text("from inside\n")
        server.start()
        try:
            forward.start()
            with urllib.request.urlopen(f"http://127.0.0.1:{outer_port}/hello.txt") as r:
                assert r.read() == b"from inside\n"
        finally:
            forward.stop()
            server.stop()
        assert not server.alive and not forward.alive

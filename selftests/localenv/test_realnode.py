"""A real node on this machine (issue 18's foundation): inside the run's own namespaces a
control plane, containerd, kubelet and kube-proxy boot, the node turns Ready, and a pod from
the run's registry really runs (a container ID, a pod IP from the bridge, live processes in
the run's cgroups); afterwards nothing of it is left: no process, no cgroup, no namespace."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from selftests.safety.harness import processes_naming
from signcheck.localenv.netns import NetNs, missing_tools
from signcheck.localenv.process import is_alive
from signcheck.localenv.services.containerd import cni_bin_dir, runc_path

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

if os.geteuid() != 0 or missing_tools():
    pytest.skip("a real node needs root and util-linux/iproute2", allow_module_level=True)
if runc_path() is None or cni_bin_dir() is None:
    pytest.skip(
        "a real node needs Debian's runc and containernetworking-plugins "
        "(apt-get install runc containernetworking-plugins)",
        allow_module_level=True,
    )


def test_a_pod_really_runs_on_the_real_node_and_nothing_is_left(tmp_path: Path) -> None:
    # A run-id-like name: the shims' command lines carry it (their containerd socket).
    run_dir = tmp_path / f"selftest-{secrets.token_hex(4)}"
    run_dir.mkdir()
    with NetNs(run_dir) as ns:
        ns.sysctl("net.ipv4.ip_forward", "1")
        holder = ns.pid
        proc = subprocess.run(
            [
                *ns.prefix,
                sys.executable,
                "-m",
                "selftests.localenv.realnode_boot",
                str(run_dir),
                str(ns.dir / "resolv.conf"),
            ],
            capture_output=True,
            text=True,
            timeout=400,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "error" not in seen, seen["error"][-3000:]
    assert seen["conditions"]["Ready"] == "True"
    assert seen["admitted"] is True and seen["phase"] == "Running", seen
    assert str(seen["container_id"]).startswith("containerd://"), seen
    assert ipaddress.ip_address(seen["pod_ip"]) in ipaddress.ip_network("10.88.0.0/16")
    # The sandbox and the container: the same static pause program, really running.
    assert seen["processes"] == ["/pause", "/pause"], seen
    # A pinned binary (Kyverno's init container) as an image FROM scratch runs on the node
    # and ends by itself (`--help`), as the chart's Kyverno will.
    assert seen["binary_image"] == {"phase": "Succeeded", "reason": "Completed"}, seen
    assert seen["teardown_problems"] == []
    # Nothing left: the namespace's holder, every process naming the run, its cgroups.
    assert not is_alive(holder)
    assert processes_naming(str(run_dir)) == []
    assert processes_naming(run_dir.name) == [], "a containerd shim outlived the node"
    # Every hierarchy, looked up independently of the code under test (v1 and hybrid v2).
    assert not list(Path("/sys/fs/cgroup").glob(f"*/signcheck-{run_dir.name}"))

"""`signcheck fleet` against three real local environments started side by side, one of them
deliberately broken (its Kyverno admission controller killed after the boot, as an outage
would), and a fourth cluster nobody can reach: the fleet report shows the two healthy
clusters, names what is wrong with the other two in their runs' own words (one line each, the
fleet goes on), and every run removed what it created in its cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from selftests.safety.conftest import EnvFactory
from selftests.safety.harness import ROOT, Dirs
from signcheck.target import RUN_LABEL


def test_fleet_with_a_broken_and_an_unreachable_cluster(
    env_up: EnvFactory, dirs: Dirs, tmp_path: Path
) -> None:
    healthy = [env_up(), env_up()]
    broken = env_up()
    os.kill(int(broken.info["pids"]["kyverno"]), signal.SIGKILL)
    profiles = [Path(view.info["profile"]) for view in (*healthy, broken)]
    for profile in profiles:
        # What `env up` wrote is the cluster target pointed at that environment.
        assert 'target = "cluster"' in profile.read_text()
    # A cluster that is not there: its apiserver address refuses connections.
    gone_kc = tmp_path / "gone.kubeconfig"
    gone_kc.write_text(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n"
        "    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\n"
        "users:\n- name: u\n  user: {token: not-a-secret}\ncontexts:\n- name: gone\n"
        "  context: {cluster: gone, user: u}\ncurrent-context: gone\n"
    )
    gone = tmp_path / "gone.toml"
    registry = healthy[0].info["registry"]
    gone.write_text(
        f'target = "cluster"\nkubeconfig = "{gone_kc}"\nregistry = "{registry["host"]}"\n'
        f'registry-scheme = "{registry["scheme"]}"\n'
    )
    reports = tmp_path / "reports"
    argv = [sys.executable, "-m", "signcheck", "fleet", "--reports", str(reports)]
    argv += ["--profile", str(profiles[0]), "--profile", str(profiles[1])]
    argv += ["--profile", f"broken={profiles[2]}", "--profile", str(gone), "--", "-k", "SEED"]
    proc = subprocess.run(
        argv, cwd=ROOT, env=dirs.environ(), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    fleet = json.loads((reports / "fleet.json").read_text())
    names = [Path(view.info["run_dir"]).name for view in healthy]
    assert fleet["clusters"] == [*names, "broken", "gone"]
    assert fleet["healthy"] == names and fleet["unhealthy"] == ["broken", "gone"]
    runs = {r["cluster"]: r for r in fleet["runs"]}
    for name in names:
        assert runs[name]["state"] == "enforced" and runs[name]["totals"]["pass"] >= 2
    problem = runs["broken"]["problem"]
    assert problem.startswith("Kyverno is installed but its webhooks are not ready"), problem
    assert "connection refused" in problem
    unreachable = runs["gone"]["problem"]
    assert unreachable.startswith("the cluster at https://127.0.0.1:1 is unreachable"), unreachable
    # No row differs for a cluster that judged nothing.
    assert fleet["differences"] == 0
    page = (reports / "fleet.html").read_text()
    assert "2 of 4 clusters admit only signed images" in page and "webhooks are not ready" in page
    assert "BAD broken: undetermined (exit 6)" in proc.stdout
    assert "BAD gone: undetermined (exit 6)" in proc.stdout
    for name, view in zip([*names, "broken"], (*healthy, broken), strict=True):
        run_id = runs[name]["run_id"]
        assert run_id, "each cluster's run has its own id"
        left = view.cluster.core.list_namespace(label_selector=f"{RUN_LABEL}={run_id}").items
        assert [n.metadata.name for n in left if n.status.phase != "Terminating"] == []

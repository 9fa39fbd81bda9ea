"""`signcheck incluster` on a real node (issue 15): the suite image built here (mmdebstrap,
no container engine), pushed to the environment's registry (TLS and credentials of its own)
and signed, run as a Job whose pod really runs on the node; the seed's scenarios pass inside
the cluster, the results come back into the reports directory, and the run's namespace and
cluster role, and the suite image with its signature, are gone afterwards."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from selftests.cluster.conftest import real_node_env
from signcheck.cli.env import write_profile
from signcheck.clients.k8s import Cluster
from signcheck.clients.oci import OciClient
from signcheck.localenv import LocalEnv
from signcheck.target import RUN_LABEL, Registry

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def real_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnv]:
    if shutil.which("mmdebstrap") is None:
        pytest.skip("the suite image needs mmdebstrap (apt-get install mmdebstrap)")
    with real_node_env(tmp_path_factory, "process") as env:
        yield env


def test_seed_scenarios_pass_inside_the_cluster(real_env: LocalEnv, tmp_path: Path) -> None:
    info = real_env.info.as_dict()
    profile = write_profile(info)
    creds = real_env.info.registry.credentials()
    assert creds is not None
    reports = tmp_path / "reports"
    # The password reaches the run through the file the profile names (`env up` writes it).
    assert "registry-password-file" in profile.read_text() and creds[1] not in profile.read_text()
    env = {**os.environ, "SIGNCHECK_RUN_DIR": str(tmp_path / "runs")}
    env.pop("SIGNCHECK_REGISTRY_PASSWORD", None)
    argv = [sys.executable, "-m", "signcheck", "incluster", "--profile", str(profile)]
    argv += ["--host-network", "--reports", str(reports), "--", "-k", "SEED"]
    proc = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert creds[1] not in output
    (results,) = (reports / "incluster").iterdir()
    summary = json.loads((results / "summary.json").read_text())
    assert (results / "junit.xml").is_file() and (results / "pytest.log").is_file()
    assert summary["verdict"]["state"] == "enforced", summary["verdict"]
    seed = {t["scenario"]: t["outcome"] for t in summary["tests"] if t.get("scenario")}
    assert seed.get("SEED-01") == "pass" and seed.get("SEED-03") == "pass", seed
    # The run inside used the pod's service account through the cluster target.
    assert summary["target"] == "cluster"
    assert "verdict inside the cluster: enforced" in proc.stdout
    cluster = Cluster(Path(real_env.info.kubeconfig))
    run_id = results.name
    left = cluster.core.list_namespace(label_selector=f"{RUN_LABEL}={run_id}").items
    assert [n.metadata.name for n in left if n.status.phase != "Terminating"] == []
    roles = cluster.dynamic.resources.get(
        api_version="rbac.authorization.k8s.io/v1", kind="ClusterRole"
    ).get(label_selector=f"{RUN_LABEL}={run_id}")
    assert roles.items == []
    reg = real_env.info.registry
    ca = Path(reg.ca_path) if reg.ca_path else None
    oci = OciClient(Registry(reg.host, "https", ca, creds[0], creds[1]))
    tags = oci.tags(f"{reg.host}/signcheck/signcheck-suite")
    assert not [t for t in tags if run_id in t or t.endswith(".sig")], tags

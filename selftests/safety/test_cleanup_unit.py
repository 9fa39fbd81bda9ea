"""`signcheck.run.claims` and `signcheck.run.stale` without a cluster: claims, staleness, and
records a crashed run leaves in odd states."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from signcheck.run import claims, stale


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIGNCHECK_RUN_DIR", str(tmp_path / "env-runs"))
    monkeypatch.delenv("SIGNCHECK_REGISTRY_PASSWORD", raising=False)
    return tmp_path / "suite-runs"


def test_a_live_claim_is_not_stale_and_a_released_one_is(roots: Path) -> None:
    claim = claims.RunClaim.create(roots, "20260101-000000-aaaaaa", target="local", keep=False)
    assert [p.name for p in roots.iterdir()] == ["20260101-000000-aaaaaa"]
    assert claims.stale_runs(roots) == []
    claim.release()
    assert [i.run_id for i in claims.stale_runs(roots)] == ["20260101-000000-aaaaaa"]


def test_a_claim_held_by_a_dead_process_is_stale(roots: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from signcheck.run import claims; "
        "claims.RunClaim.create(Path(sys.argv[1]), 'r-dead', target='local'); "
        "import os; os._exit(0)"  # no release: the kernel drops the lock with the process
    )
    subprocess.run([sys.executable, "-c", code, str(roots)], check=True)
    assert [i.run_id for i in claims.stale_runs(roots)] == ["r-dead"]


def test_kept_finished_runs_are_left_until_named(roots: Path) -> None:
    claim = claims.RunClaim.create(roots, "r-kept", target="local", keep=True)
    claim.mark(claims.FINISHED)
    claim.release()
    assert claims.stale_runs(roots) == []
    assert [i.run_id for i in claims.stale_runs(roots, include_kept=True)] == ["r-kept"]


def test_local_run_whose_environment_is_gone_is_removed_without_a_password(
    roots: Path,
) -> None:
    # A local run with registry auth, killed; its environment was reaped by someone else
    # already, so neither the cluster nor the registry password exists any more.
    claim = claims.RunClaim.create(roots, "r-local", target="local")
    target = {
        "name": "local",
        "run_id": "r-local",
        "run_dir": str(claim.run_dir),
        "kubeconfig": "/nonexistent/admin.yaml",
        "registry": {"host": "127.0.0.1:1", "scheme": "http", "username": "signcheck"},
        "extra": {"env_run_dir": "/nonexistent/env"},
    }
    (claim.run_dir / "target.json").write_text(json.dumps(target))
    claim.release()
    (info,) = claims.stale_runs(roots)
    outcome = stale.clean_run(info)
    assert outcome.errors == [] and outcome.removed, outcome
    assert not claim.run_dir.exists()


def test_cluster_run_without_the_registry_password_says_what_it_needs(roots: Path) -> None:
    claim = claims.RunClaim.create(roots, "r-cluster", target="cluster")
    target = {
        "name": "cluster",
        "run_id": "r-cluster",
        "run_dir": str(claim.run_dir),
        "kubeconfig": "/nonexistent/kubeconfig",
        "registry": {"host": "registry.example:5000", "scheme": "https", "username": "ci"},
    }
    (claim.run_dir / "target.json").write_text(json.dumps(target))
    claim.release()
    (info,) = claims.stale_runs(roots)
    outcome = stale.clean_run(info)
    assert not outcome.removed and claim.run_dir.exists()
    assert outcome.errors == [
        "run r-cluster pushed to registry.example:5000 as ci: export "
        "SIGNCHECK_REGISTRY_PASSWORD to remove its images"
    ]

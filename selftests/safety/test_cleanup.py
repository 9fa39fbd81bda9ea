"""Nothing of a run survives it: normal end, failing tests, Ctrl-C, SIGTERM, kill -9.

Each test runs the real suite as a subprocess, ends it one way, and then looks from the
outside for anything carrying the run id: processes, run directories, and (against a
cluster and registry that outlive the run) namespaces, policies, secrets and images. Where
the run cannot clean up after itself (kill -9), the test first proves that something *was*
left, then that the next run, or `signcheck cleanup`, removes it.
"""

from __future__ import annotations

import json
import signal

import pytest

from selftests.safety.conftest import EnvFactory
from selftests.safety.harness import (
    Dirs,
    SuiteRun,
    local_leftovers,
    node_processes,
    signcheck_cli,
)
from signcheck.clients.k8s import Cluster
from signcheck.localenv.services.containerd import cni_bin_dir, runc_path

pytestmark = [pytest.mark.integration]

ONE_TEST = ["-k", "test_signature_artefact_names_the_digest"]
# Signals land while the run holds inside SEED-05 (its namespace and pod exist): see hold.py.
MID_TEST = "test_signed_pod_admitted_and_running"


def _cluster_of(run: SuiteRun) -> Cluster:
    """The local target's cluster, from the run's environment directory."""
    path = run.env_dir / "kubeconfigs" / "admin.yaml"
    run.wait_file("resources.json")
    return Cluster(path)


def test_normal_end_leaves_nothing(dirs: Dirs) -> None:
    run = SuiteRun.start(dirs, dirs.suite.parent / "reports")
    run.wait_run_id()
    assert run.wait() == 0, run.output[-3000:]
    assert run.summary()["teardown"]["clean"] is True
    assert local_leftovers(run) == {}


def test_failing_tests_leave_nothing(dirs: Dirs) -> None:
    # The policy holds the wrong key: SEED-04 fails, the canary and SEED-05..07 are not
    # judged (environment), and teardown must still be complete.
    run = SuiteRun.start(dirs, dirs.suite.parent / "reports", "--signcheck-sabotage", "other-key")
    run.wait_run_id()
    assert run.wait() == 1, run.output[-3000:]
    summary = run.summary()
    totals = summary["totals"]
    assert totals.get("fail", 0) >= 1 and totals.get("environment", 0) >= 4, totals
    assert summary["teardown"]["clean"] is True, summary["teardown"]
    assert local_leftovers(run) == {}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_run_cleans_up_after_itself(dirs: Dirs, sig: signal.Signals) -> None:
    run = SuiteRun.start(dirs, dirs.suite.parent / "reports", hold_at=MID_TEST)
    run.wait_run_id()
    cluster = _cluster_of(run)
    run.wait_held()
    run.wait_namespaces(cluster)  # mid-run: a test's namespace exists
    assert local_leftovers(run), "nothing of the run exists yet: the interrupt proves nothing"
    run.signal(sig)
    code = run.wait(120)
    assert code == 2, f"exit {code}, expected pytest's 'interrupted'\n{run.output[-3000:]}"
    assert "KeyboardInterrupt" in run.output
    assert local_leftovers(run) == {}, run.output[-3000:]
    # The test the signal landed in never finished: it could not be judged, it did not pass.
    summary = run.summary()
    (held,) = [t for t in summary["tests"] if t["nodeid"].endswith(f"::{MID_TEST}")]
    assert held["outcome"] == "environment", held
    assert (held["pytest_outcome"], held["failure"]) == ("interrupted", "environment"), held
    assert "interrupted before this test finished" in held["cause"], held
    assert summary["verdict"]["state"] != "enforced", summary["verdict"]


def test_kill9_then_next_run_removes_everything(dirs: Dirs) -> None:
    run = SuiteRun.start(dirs, dirs.suite.parent / "reports", hold_at=MID_TEST)
    run.wait_run_id()
    run.wait_held()
    run.wait_namespaces(_cluster_of(run))
    run.signal(signal.SIGKILL)
    assert run.wait(30) == -signal.SIGKILL
    left = local_leftovers(run)
    # kill -9 gives the run no chance: its services (own sessions) and directories remain.
    assert "processes" in left and "suite run dir" in left and "environment dir" in left, left

    dry = signcheck_cli(dirs, "cleanup", "--all-stale", "--dry-run", "--runs-dir", str(dirs.suite))
    assert dry.returncode == 0 and run.run_id in dry.stdout, dry.stdout + dry.stderr
    assert local_leftovers(run).keys() == left.keys(), "--dry-run removed something"

    following = SuiteRun.start(dirs, dirs.suite.parent / "reports2", *ONE_TEST)
    assert following.wait() == 0, following.output[-3000:]
    assert f"cleaned up earlier run {run.run_id}" in following.output
    assert local_leftovers(run) == {}
    assert local_leftovers(following) == {}


def test_kill9_then_cleanup_command(dirs: Dirs) -> None:
    run = SuiteRun.start(dirs, dirs.suite.parent / "reports", hold_at=MID_TEST)
    run.wait_run_id()
    run.wait_held()
    run.wait_namespaces(_cluster_of(run))
    run.signal(signal.SIGKILL)
    run.wait(30)
    assert "processes" in local_leftovers(run)
    done = signcheck_cli(dirs, "cleanup", "--run", run.run_id, "--runs-dir", str(dirs.suite))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{run.run_id}: removed" in done.stdout
    assert local_leftovers(run) == {}


def _services_recorded(run: SuiteRun) -> set[str]:
    try:
        state = json.loads((run.env_dir / "state.json").read_text())
    except (OSError, ValueError):
        return set()
    return {s["name"] for s in state.get("services", [])}


def test_kill9_during_boot_then_cleanup_command(dirs: Dirs) -> None:
    run = SuiteRun.start(dirs, dirs.suite.parent / "reports")
    run.wait_run_id()
    # Mid-boot: the apiserver has been started, Kyverno not yet.
    run.wait_until(
        lambda: "kube-apiserver" in _services_recorded(run), "the environment's apiserver"
    )
    run.signal(signal.SIGKILL)
    assert run.wait(30) == -signal.SIGKILL
    assert not (run.run_dir / "target.json").exists(), "the boot had finished: not mid-boot"
    assert "kyverno" not in _services_recorded(run), "the boot had got to Kyverno"
    left = local_leftovers(run)
    assert "processes" in left and "environment dir" in left, left
    done = signcheck_cli(dirs, "cleanup", "--run", run.run_id, "--runs-dir", str(dirs.suite))
    assert done.returncode == 0, done.stdout + done.stderr
    assert local_leftovers(run) == {}


def test_kill9_of_a_two_worker_run_then_next_run_removes_everything(dirs: Dirs) -> None:
    run = SuiteRun.start(dirs, dirs.suite.parent / "reports", "-n", "2", hold_at=MID_TEST)
    run.wait_run_id()
    run.wait_held()
    run.wait_namespaces(_cluster_of(run))
    run.signal(signal.SIGKILL)
    assert run.wait(30) == -signal.SIGKILL
    left = local_leftovers(run)
    assert "processes" in left and "suite run dir" in left, left

    following = SuiteRun.start(dirs, dirs.suite.parent / "reports2", *ONE_TEST)
    assert following.wait() == 0, following.output[-3000:]
    assert f"cleaned up earlier run {run.run_id}" in following.output
    assert local_leftovers(run) == {}
    assert local_leftovers(following) == {}


def test_cleanup_refuses_a_live_run(dirs: Dirs) -> None:
    hold_at = ONE_TEST[1]
    run = SuiteRun.start(dirs, dirs.suite.parent / "reports", *ONE_TEST, hold_at=hold_at)
    run.wait_run_id()
    run.wait_held()
    try:
        refused = signcheck_cli(dirs, "cleanup", "--run", run.run_id, "--runs-dir", str(dirs.suite))
        stale = signcheck_cli(dirs, "cleanup", "--all-stale", "--runs-dir", str(dirs.suite))
    finally:
        run.release()
        code = run.wait()
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "is still running" in refused.stderr
    assert run.run_id not in stale.stdout, stale.stdout
    assert code == 0, run.output[-3000:]
    assert local_leftovers(run) == {}


# -- against a cluster and registry that outlive the run -------------------------------


def test_cluster_kill9_then_cleanup_removes_objects_and_images(
    dirs: Dirs, env_up: EnvFactory
) -> None:
    remote = env_up()
    run = SuiteRun.start(
        dirs, dirs.suite.parent / "reports", *remote.target_args(), hold_at=MID_TEST
    )
    run.wait_run_id()
    run.wait_file("resources.json")
    run.wait_held()
    run.wait_namespaces(remote.cluster)
    run.signal(signal.SIGKILL)
    run.wait(30)
    before = remote.leftovers(run.run_id)
    assert {"namespaces", "policies", "images"} <= set(before), before
    assert "suite run dir" in local_leftovers(run)

    done = signcheck_cli(dirs, "cleanup", "--run", run.run_id, "--runs-dir", str(dirs.suite))
    assert done.returncode == 0, done.stdout + done.stderr
    assert remote.leftovers(run.run_id) == {}
    assert local_leftovers(run) == {}


def test_cluster_ctrl_c_removes_objects_and_images(dirs: Dirs, env_up: EnvFactory) -> None:
    remote = env_up()
    run = SuiteRun.start(
        dirs, dirs.suite.parent / "reports", *remote.target_args(), hold_at=MID_TEST
    )
    run.wait_run_id()
    run.wait_held()
    run.wait_namespaces(remote.cluster)
    assert remote.leftovers(run.run_id)
    run.signal(signal.SIGINT)
    assert run.wait(180) == 2, run.output[-3000:]
    assert remote.leftovers(run.run_id) == {}
    assert local_leftovers(run) == {}


@pytest.mark.skipif(
    runc_path() is None or cni_bin_dir() is None,
    reason="a real node needs Debian's runc and containernetworking-plugins",
)
def test_kill9_of_a_real_node_run_with_a_running_pod_then_cleanup(dirs: Dirs) -> None:
    seed05 = ["-k", MID_TEST, "--nodes", "real"]
    run = SuiteRun.start(dirs, dirs.suite.parent / "reports", *seed05, hold_at=MID_TEST)
    run.wait_run_id()
    run.wait_held()
    # The test's container really runs: the run's static program in the run's cgroups.
    run.wait_until(
        lambda: "/signcheck-app" in node_processes(run.run_id), "the signed pod's container"
    )
    run.signal(signal.SIGKILL)
    assert run.wait(30) == -signal.SIGKILL
    left = local_leftovers(run)
    assert "processes" in left and "node cgroups" in left, left
    done = signcheck_cli(dirs, "cleanup", "--run", run.run_id, "--runs-dir", str(dirs.suite))
    assert done.returncode == 0, done.stdout + done.stderr
    assert node_processes(run.run_id) == []
    assert local_leftovers(run) == {}

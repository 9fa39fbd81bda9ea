"""Fail-closed lockout: Kyverno stopped mid-run while its `failurePolicy: Fail` webhook is
still registered.

The real Kyverno is SIGKILLed (by the `stop_kyverno` plugin loaded into the suite) just
before SEED-05's body, or before SEED-06's setup makes that test's namespace (the canary has
passed by then: it runs in SEED-05's setup, with the first namespace). The suite must
report an environment error and stop, never a verdict on signatures (and never wait out a
timeout per test); and once the run has cleaned up, pods in namespaces that have nothing to
do with the run are admitted again, unless other policies still rely on that webhook, in
which case the run leaves it and says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from selftests.safety.conftest import EnvFactory
from selftests.safety.harness import Dirs, RemoteView, SuiteRun, local_leftovers
from signcheck.clients import admission, k8s
from signcheck.localenv.process import is_alive

pytestmark = [pytest.mark.integration]

STOP_BEFORE = "test_signed_pod_admitted_and_running"
ADMISSION_TESTS = {"SEED-05", "SEED-06", "SEED-07"}


def _start(dirs: Dirs, *args: str, env_dir: Path | None = None, **environ: str) -> SuiteRun:
    extra = {"SIGNCHECK_STOP_KYVERNO_BEFORE": STOP_BEFORE, **environ}
    if env_dir is not None:
        extra["SIGNCHECK_STOP_KYVERNO_ENV"] = str(env_dir)
    return SuiteRun.start(
        dirs,
        dirs.suite.parent / "reports",
        "-p",
        "selftests.safety.stop_kyverno",
        *args,
        env=dirs.environ(**extra),
    )


def _assert_environment_error(
    run: SuiteRun,
    cause: str = "signed pod: the admission webhook mutate.kyverno.svc-fail could ",
    stopped_at: str = "SEED-05",
) -> dict[str, Any]:
    summary = run.summary()
    outcomes = {t["scenario"]: t["outcome"] for t in summary["tests"] if t["scenario"]}
    before = f"SEED-0{int(stopped_at[-1]) - 1}"
    assert outcomes.get(before) == "pass", outcomes  # Kyverno was alive until here
    assert outcomes.get(stopped_at) == "environment", outcomes
    after = {s for s in ADMISSION_TESTS if s > stopped_at}
    passed = {s for s, o in outcomes.items() if o == "pass"}
    assert not passed & (after | {stopped_at}), f"a verdict passed without Kyverno: {outcomes}"
    (met,) = [t for t in summary["tests"] if t["scenario"] == stopped_at]
    assert met["failure"] == "environment", met
    assert cause in met["cause"], met
    assert "is Kyverno running?" in met["cause"], met
    assert "says nothing about signatures" in met["cause"], met
    # The run stopped there: no later admission test ran into the same dead webhook.
    assert not after & set(outcomes), outcomes
    assert summary["verdict"]["state"] == "undetermined", summary["verdict"]
    assert "environment error" in run.output
    assert run.returncode == 6, run.output[-3000:]
    return summary


def test_kyverno_killed_before_new_namespaces_stops_the_run_at_once(dirs: Dirs) -> None:
    """The dead webhook met by the namespace check (the dry-run probe of a test's new
    namespace), not by an admission: the run stops there with the environment cause, rather
    than waiting out the namespace timeout (90 s) in every later test."""
    run = _start(
        dirs,
        SIGNCHECK_STOP_KYVERNO_BEFORE="test_unsigned_pod_denied",
        SIGNCHECK_STOP_KYVERNO_AT="setup",
    )
    run.wait_run_id()
    # The boot, the session resources and SEED-01..05 take well under a minute here; one
    # namespace timeout for each of SEED-06 and SEED-07 would take 180 s more.
    run.wait_or_stop(150, "the run did not stop: later tests waited out their namespace check")
    summary = _assert_environment_error(
        run,
        cause="the admission webhook mutate.kyverno.svc-fail could not be called",
        stopped_at="SEED-06",
    )
    (seed06,) = [t for t in summary["tests"] if t["scenario"] == "SEED-06"]
    assert seed06["pytest_outcome"] == "error", seed06  # in its setup: the namespace
    assert "namespace" in seed06["cause"], seed06
    assert seed06["duration"] < 30, f"SEED-06 waited {seed06['duration']} s for its namespace"
    assert summary["teardown"]["clean"] is True, summary["teardown"]
    assert local_leftovers(run) == {}


def _bystander_pod(remote: RemoteView, namespace: str, name: str) -> admission.Admission:
    image = f"{remote.registry.host}/elsewhere/app:1"
    return remote.cluster.create(k8s.pod(name, namespace, image, run_id="bystander"), image)


def _kyverno_pid(remote: RemoteView) -> tuple[int, int]:
    state = json.loads((remote.env_dir / "state.json").read_text())
    (rec,) = [s for s in state["services"] if s["name"] == "kyverno"]
    return rec["pid"], rec["start_time"]


def test_local_target_reports_an_environment_error(dirs: Dirs) -> None:
    run = _start(dirs)
    run.wait_run_id()
    run.wait(300)
    summary = _assert_environment_error(run)
    teardown = summary["teardown"]
    assert teardown["clean"] is True, teardown
    # The dead webhook goes with the run's own apiserver: the environment is stopped whole.
    # (Undoing the lockout on a cluster that outlives the run: the test below.)
    actions = " ".join(teardown.get("actions", []))
    assert "local environment stopped" in actions, teardown
    assert local_leftovers(run) == {}


def test_pods_elsewhere_are_admitted_after_cleanup(dirs: Dirs, env_up: EnvFactory) -> None:
    remote = env_up()
    remote.cluster.create_namespace("bystander", "bystander")
    # Control: before the run, a pod of nobody's run is admitted.
    assert _bystander_pod(remote, "bystander", "before").admitted
    pid, started = _kyverno_pid(remote)

    run = _start(dirs, *remote.target_args(), env_dir=remote.env_dir)
    run.wait_run_id()
    run.wait(300)
    summary = _assert_environment_error(run)
    assert summary["teardown"]["clean"] is True, summary["teardown"]
    assert not is_alive(pid, started), "Kyverno is running again: the check below proves nothing"

    after = _bystander_pod(remote, "bystander", "after")
    assert after.admitted, f"pods elsewhere are still refused: {getattr(after, 'message', '')}"
    assert remote.leftovers(run.run_id) == {}


def test_webhook_left_in_place_when_other_policies_need_it(dirs: Dirs, env_up: EnvFactory) -> None:
    remote = env_up()
    # Somebody else's policy: removing Kyverno's webhook would switch its enforcement off.
    theirs = {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "someone-elses"},
        "spec": {
            "validationFailureAction": "Audit",
            "background": False,
            "rules": [
                {
                    "name": "label",
                    "match": {"any": [{"resources": {"kinds": ["ConfigMap"]}}]},
                    "validate": {"message": "x", "pattern": {"metadata": {"name": "?*"}}},
                }
            ],
        },
    }
    remote.cluster.custom.create_cluster_custom_object(
        "kyverno.io", "v1", "clusterpolicies", theirs
    )

    # The locked-out namespaces cannot go; no need to wait the default 90 s to see that.
    run = _start(
        dirs,
        *remote.target_args(),
        env_dir=remote.env_dir,
        SIGNCHECK_TIMEOUT_NAMESPACE_DELETE="10",
    )
    run.wait_run_id()
    run.wait(300)
    summary = _assert_environment_error(run)
    teardown = summary["teardown"]
    assert teardown["clean"] is False, teardown
    errors = " ".join(teardown["errors"])
    assert "left it in place" in errors and "clusterpolicies/someone-elses" in errors, errors
    assert "pods in other namespaces are refused" in run.output
    # The lockout is real and still there: a pod elsewhere is refused by the dead webhook.
    refused = _bystander_pod(remote, "default", "elsewhere")
    assert isinstance(refused, admission.Denied) and refused.webhook_unavailable, refused

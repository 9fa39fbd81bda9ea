"""Enforcement broken six ways through the cluster's own configuration (never through the
suite's policy variants): each time the run's first signcheck line names the cause, the canary
is `fail` (the cluster lets an unsigned image in) or `environment` (the run cannot judge), and
every scenario that judges admission is `environment` with that same cause.

One healthy environment serves every case (`some_cluster`); each case changes the cluster,
runs the seed's scenarios against it as `--target cluster`, and restores what it changed.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from selftests.cluster.conftest import ClusterUnderTest
from signcheck.clients.k8s import Cluster

pytestmark = [pytest.mark.integration]

KNS = "kyverno"
RUN = "signcheck.io/run"
TESTS = ("tests/test_canary.py", "tests/test_seed.py")
ADMISSION_SCENARIOS = ("SEED-05", "SEED-06", "SEED-07")


@dataclass(frozen=True)
class Break:
    apply: Callable[[Cluster], Callable[[], None]]
    """Changes the cluster; returns the undo."""
    cause: str
    """What the cause line must say."""
    canary: str
    """The canary's result class."""


def _configmap(**changes: Callable[[str], str]) -> Callable[[Cluster], Callable[[], None]]:
    def apply(cluster: Cluster) -> Callable[[], None]:
        cm = cluster.core.read_namespaced_config_map("kyverno", KNS)
        before = dict(cm.data or {})
        after = {**before, **{k: f(before.get(k, "")) for k, f in changes.items()}}
        cluster.core.patch_namespaced_config_map("kyverno", KNS, {"data": after})

        def undo() -> None:
            cluster.core.patch_namespaced_config_map("kyverno", KNS, {"data": before})

        return undo

    return apply


def _selector(which: str) -> Callable[[str], str]:
    def change(value: str) -> str:
        cfg = json.loads(value or "{}")
        exclude = {"key": RUN, "operator": "DoesNotExist"}
        sel = cfg.setdefault(which, {})
        sel.setdefault("matchExpressions", []).append(exclude)
        return json.dumps(cfg)

    return change


def _vap(cluster: Cluster) -> Callable[[], None]:
    adm = client.AdmissionregistrationV1Api(cluster.api)
    only_runs = {"matchExpressions": [{"key": RUN, "operator": "Exists"}]}
    adm.create_validating_admission_policy(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "selftest-freeze-pods"},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "namespaceSelector": only_runs,
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["pods"],
                        }
                    ],
                },
                "validations": [{"expression": "false", "message": "pods are frozen here"}],
            },
        }
    )
    adm.create_validating_admission_policy_binding(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "selftest-freeze-pods-binding"},
            "spec": {
                "policyName": "selftest-freeze-pods",
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": only_runs},
            },
        }
    )

    def undo() -> None:
        adm.delete_validating_admission_policy_binding("selftest-freeze-pods-binding")
        adm.delete_validating_admission_policy("selftest-freeze-pods")

    return undo


def _regcred(cluster: Cluster) -> Callable[[], None]:
    """Kyverno's pull secret with a wrong password: the registry refuses Kyverno."""
    secret = cluster.core.read_namespaced_secret("regcred", KNS)
    before = dict(secret.data)
    config = json.loads(base64.b64decode(before[".dockerconfigjson"]))
    for auth in config.get("auths", {}).values():
        user = base64.b64decode(auth["auth"]).decode().split(":", 1)[0]
        auth["auth"] = base64.b64encode(f"{user}:not-the-password".encode()).decode()
        auth.pop("password", None)
    wrong = base64.b64encode(json.dumps(config).encode()).decode()
    cluster.core.patch_namespaced_secret("regcred", KNS, {"data": {".dockerconfigjson": wrong}})

    def undo() -> None:
        cluster.core.patch_namespaced_secret("regcred", KNS, {"data": before})

    return undo


BREAKS = {
    "webhook-namespace-selector": Break(
        _configmap(webhooks=_selector("namespaceSelector")),
        "Kyverno's webhooks never see namespace",
        "fail",
    ),
    "webhook-object-selector": Break(
        _configmap(webhooks=_selector("objectSelector")),
        "Kyverno's webhooks never see the run's pods: the objectSelector",
        "fail",
    ),
    "resource-filter": Break(
        _configmap(resourceFilters=lambda v: v + "[Pod,sc-*,*]"),
        "resourceFilters entry [Pod,sc-*,*]",
        "fail",
    ),
    "excluded-group": Break(
        _configmap(excludeGroups=lambda v: ",".join([*filter(None, [v]), "system:masters"])),
        "excludeGroups: system:masters",
        "fail",
    ),
    "admission-policy": Break(
        _vap, "refused by ValidatingAdmissionPolicy selftest-freeze-pods", "environment"
    ),
    "kyverno-pull-secret": Break(_regcred, "Kyverno cannot read the registry", "environment"),
}


@contextmanager
def _broken(cluster: Cluster, how: Break) -> Iterator[None]:
    undo = how.apply(cluster)
    # Kyverno applies a ConfigMap change through its informer and re-registers its webhooks
    # from it: give it the moment it takes (the run's own boot takes longer still).
    time.sleep(2)
    try:
        yield
    finally:
        undo()
        time.sleep(2)


def _first_signcheck_line(output: str) -> str:
    return next((ln for ln in output.splitlines() if ln.startswith("signcheck:")), "")


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_the_cause_is_named_once(some_cluster: ClusterUnderTest, tmp_path: Path, name: str) -> None:
    how = BREAKS[name]
    cluster = Cluster(some_cluster.kubeconfig)
    with _broken(cluster, how):
        outcome = some_cluster.run(tmp_path, tests=TESTS)
    summary: dict[str, Any] = outcome.summary or {}
    assert summary, outcome.output[-4000:]
    first = _first_signcheck_line(outcome.output)
    assert how.cause in first and "fix:" in first, (first, outcome.output[-3000:])
    diagnosis = summary["diagnosis"]
    assert how.cause in diagnosis["cause"] and diagnosis["kind"] == how.canary, diagnosis
    results = {t["scenario"]: t for t in summary["tests"]}
    assert results["CANARY-01"]["outcome"] == how.canary, results["CANARY-01"]
    for scenario in ADMISSION_SCENARIOS:
        assert results[scenario]["outcome"] == "environment", results[scenario]
        assert how.cause in results[scenario]["cause"], results[scenario]
    assert how.cause in summary["verdict"]["sentence"], summary["verdict"]
    expected_state = "not enforced" if how.canary == "fail" else "undetermined"
    assert summary["verdict"]["state"] == expected_state, summary["verdict"]
    assert outcome.returncode == (1 if how.canary == "fail" else 6), outcome.output[-2000:]
    assert summary["teardown"].get("clean") is True, summary["teardown"]

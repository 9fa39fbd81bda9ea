"""Another admission rule of the cluster refuses the pods the suite makes to check a new
namespace: the run must name that rule, at once, never blame Kyverno's namespace cache after
waiting out its timeout (90 s). The cluster is a real local environment addressed like any
cluster; the rule a real ValidatingAdmissionPolicy, of the kind platform teams write (images
only from the approved registry)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from selftests.cluster.conftest import ClusterUnderTest, admission_policy
from signcheck.clients import k8s
from signcheck.clients.admission import Denied
from signcheck.clients.k8s import Cluster
from signcheck.errors import EnvironmentNotReady, WebhookUnavailable
from signcheck.kyverno import cpol

pytestmark = pytest.mark.integration


@pytest.fixture
def approved_registry_only(some_cluster: ClusterUnderTest) -> Iterator[str]:
    """A ValidatingAdmissionPolicy that admits pods only from the environment's registry;
    yields its name once the API server enforces it."""
    name = "sc-approved-registry-" + secrets.token_hex(3)
    host = some_cluster.registry.split("://", 1)[-1]
    with admission_policy(
        some_cluster.kubeconfig,
        name,
        {"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]},
        f"object.spec.containers.all(c, c.image.startsWith('{host}/'))",
        f"images must come from the approved registry {host}",
    ):
        # The API server compiles admission policies asynchronously: wait until it refuses.
        cluster = Cluster(some_cluster.kubeconfig)
        deadline = time.monotonic() + 30
        probe = k8s.pod("approved-registry-probe", "default", "elsewhere.invalid/x:1", "probe")
        while not isinstance(cluster.create(probe, dry_run=True), Denied):
            assert time.monotonic() < deadline, f"{name} is not enforced after 30 s"
            time.sleep(0.2)
        yield name


def test_namespace_check_names_the_admission_policy_that_refused_it(
    some_cluster: ClusterUnderTest, approved_registry_only: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    outcome = some_cluster.run(
        tmp_path,
        "-k",
        "test_signed_pod_admitted_and_running",
        tests=("tests/test_seed.py",),
        timeout=300,
    )
    wall = time.monotonic() - started
    assert outcome.summary is not None, outcome.output[-3000:]
    (seed05,) = [t for t in outcome.tests if t["scenario"] == "SEED-05"]
    assert seed05["outcome"] == "environment", seed05
    # The first namespace of the run is the canary's: its diagnosis carries the cause. Either
    # way the line names the policy and its message, and neither a timeout nor Kyverno.
    cause = seed05["cause"]
    assert f"ValidatingAdmissionPolicy {approved_registry_only}" in cause.replace("'", ""), cause
    assert "images must come from the approved registry" in cause, cause
    assert "timed out" not in cause and "namespace cache" not in cause, cause
    assert seed05["duration"] < 30, f"SEED-05 waited {seed05['duration']} s (run: {wall:.0f} s)"
    assert outcome.returncode == 6, outcome.output[-3000:]


def test_the_namespace_probe_names_what_refused_it_at_once(
    some_cluster: ClusterUnderTest, approved_registry_only: str
) -> None:
    """The probe itself, outside a run: refused by the policy, it says so within seconds."""
    cluster = Cluster(some_cluster.kubeconfig)
    namespace = "sc-probe-" + secrets.token_hex(3)
    cluster.create_namespace(namespace, "probe")
    try:
        started = time.monotonic()
        with pytest.raises(EnvironmentNotReady) as raised:
            cpol.wait_namespace_seen(cluster, namespace, "probe", timeout=90)
        took = time.monotonic() - started
    finally:
        cluster.delete_namespace(namespace, wait=None)
    message = raised.value.message
    assert not isinstance(raised.value, WebhookUnavailable), message
    assert f"ValidatingAdmissionPolicy '{approved_registry_only}'" in message, message
    assert "not Kyverno" in message and "timed out" not in message, message
    assert took < cpol.REFUSAL_GRACE + 10, f"{took:.1f} s"

"""The seed's flow, step for step, on a cluster whose pods really run (issue 18): an
environment from `signcheck env up --nodes real --registry-auth --registry-tls` (a real
node, a registry with credentials and a CA of its own, no Kyverno), then the suite on
`--target cluster --kyverno-mode install`: the seed's `helm install kyverno` with the chart
of the pinned module, Kyverno's pods pulled by the node and running, its webhooks through
its Service, the seed's tests green, and the release gone afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from selftests.cluster.conftest import ClusterUnderTest, real_node_env
from signcheck.tools import helm

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterUnderTest]:
    with real_node_env(tmp_path_factory, "helm") as env:
        creds = env.info.registry.credentials()
        assert creds is not None
        yield ClusterUnderTest(
            env, Path(env.info.kubeconfig), env.info.registry.url, creds[0], creds[1]
        )


def test_seed_flow_on_a_real_node_with_kyverno_installed_by_helm(
    real_cluster: ClusterUnderTest, tmp_path: Path
) -> None:
    values = real_cluster.env.info.kyverno_values
    assert values and Path(values).is_file()
    ca = real_cluster.env.info.registry.ca_path
    assert ca and real_cluster.registry.startswith("https://")
    outcome = real_cluster.run(
        tmp_path,
        *("--registry-ca", ca, "--kyverno-mode", "install", "--kyverno-values", values),
        timeout=900,
    )
    outcome.assert_green()
    assert outcome.summary is not None
    env = outcome.summary["environment"]
    assert env["kyverno_release"] == "kyverno/kyverno", env
    assert env["kyverno_chart"].startswith("kyverno-"), env
    # Kyverno ran in the cluster: its version is read off its own Deployment's image.
    assert outcome.summary["versions"]["kyverno"] == helm.pins.group("kyverno").version
    h = helm.Helm.pinned(real_cluster.kubeconfig)
    assert not h.releases("kyverno"), "the run's release was left behind"

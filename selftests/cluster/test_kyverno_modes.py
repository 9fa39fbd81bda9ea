"""Kyverno on the cluster target: `--kyverno-mode install` (the seed's `helm install`) as far
as a cluster without real kubelets allows, the chart rendered with the seed's values, and
`existing` mode refusing a Kyverno that is missing or not answering, with one clear error."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from selftests.cluster.conftest import ClusterUnderTest, _boot
from selftests.cluster.test_bad_input import ENVIRONMENT, assert_one_error
from signcheck.clients.k8s import Cluster
from signcheck.kyverno import install
from signcheck.settings.config import Settings
from signcheck.target import RUN_LABEL, Registry
from signcheck.tools import helm, pins

pytestmark = pytest.mark.integration


def _need_helm() -> None:
    for name in ("helm", "kyverno"):
        if not pins.resolve(name).ok:
            pytest.skip(f"{name} not built")


# -- helm template with the seed's values ---------------------------------------------


def _by_kind(docs: list[dict[str, object]], kind: str, name: str) -> dict[str, object]:
    found = [d for d in docs if d.get("kind") == kind and d["metadata"]["name"] == name]  # type: ignore[index]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


def test_chart_renders_the_seed_values() -> None:
    """`--set replicaCount=1 --set imagePullSecrets.regcred.{registry,username,password}`:
    the pull secret the seed relies on, and one admission controller replica."""
    _need_helm()
    key = json.dumps({"id": "aje" + secrets.token_hex(8), "private_key": "PLEASE DO NOT LEAK"})
    values = helm.seed_kyverno_values(helm.RegCred("cr.yandex", "json_key", key))
    docs = helm.Helm.pinned().template(values)
    secret = _by_kind(docs, "Secret", "regcred")
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))  # type: ignore[index]
    auth = config["auths"]["cr.yandex"]
    assert base64.b64decode(auth["auth"]).decode() == f"json_key:{key}"
    deploy = _by_kind(docs, "Deployment", "kyverno-admission-controller")
    assert deploy["spec"]["replicas"] == 1  # type: ignore[index]
    # Kyverno itself reads signatures with the secret (the pods' images come from ghcr.io).
    (ctr,) = [
        c
        for c in deploy["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
        if c["name"] == "kyverno"
    ]
    assert "--imagePullSecrets=regcred" in ctr["args"]


def test_chart_3_ignores_replica_count() -> None:
    """Why the values carry `admissionController.replicas` beside the seed's
    `replicaCount`: chart 3.x no longer reads the latter."""
    _need_helm()
    h = helm.Helm.pinned()
    only_seed_key = h.template({"replicaCount": 3})
    new_key = h.template({"admissionController": {"replicas": 3}})
    name = "kyverno-admission-controller"
    assert _by_kind(new_key, "Deployment", name)["spec"]["replicas"] == 3  # type: ignore[index]
    assert _by_kind(only_seed_key, "Deployment", name)["spec"].get("replicas") != 3  # type: ignore[union-attr]


CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBsignchecktestca\n-----END CERTIFICATE-----\n"


def test_chart_renders_the_real_nodes_values_with_only_mirrored_images() -> None:
    """The local real node's values (`localenv.incluster`) over the seed's: every image the
    chart would run is one the environment pushes into its registry (a hook needing
    another image would hang the install offline), Kyverno shares the node's network, and
    its registry client is offline (the registry's own CA, no cloud credential helpers)."""
    _need_helm()
    from signcheck.kyverno.install import deep_merge
    from signcheck.localenv import incluster

    host = "127.0.0.1:5999"
    values = deep_merge(
        helm.seed_kyverno_values(helm.RegCred(host, "u", "p")),
        incluster.chart_values(host, ca_pem=CA_PEM),
    )
    docs = helm.Helm.pinned().template(values)
    mirrored = {f"{host}/{repo}:{incluster.image_tag()}" for repo in incluster.IMAGES.values()}
    images = set()
    for doc in docs:
        hook = ((doc.get("metadata") or {}).get("annotations") or {}).get("helm.sh/hook", "")  # type: ignore[union-attr]
        if "test" in str(hook):
            continue  # `helm test` pods, never created by an install
        spec = (doc.get("spec") or {}).get("template", {}).get("spec") or doc.get("spec") or {}  # type: ignore[union-attr]
        for key in ("containers", "initContainers"):
            images |= {c["image"] for c in spec.get(key) or []}  # type: ignore[union-attr]
    assert images and images <= mirrored, f"not mirrored: {sorted(images - mirrored)}"
    assert not [d for d in docs if d.get("kind") == "Job"], "a hook Job would need another image"
    deploy = _by_kind(docs, "Deployment", "kyverno-admission-controller")
    pod = deploy["spec"]["template"]["spec"]  # type: ignore[index]
    assert pod["hostNetwork"] is True
    (ctr,) = [c for c in pod["containers"] if c["name"] == "kyverno"]
    # TLS with the registry's CA (never verification skipped), mounted as the CA bundle.
    assert "--allowInsecureRegistry=false" in ctr["args"]
    assert "--registryCredentialHelpers=" in ctr["args"]
    mounts = {m["mountPath"] for m in ctr["volumeMounts"]}
    assert "/etc/ssl/certs/ca-certificates.crt" in mounts
    bundle = _by_kind(docs, "ConfigMap", "kyverno-admission-controller-ca-certificates")
    assert CA_PEM.strip() in bundle["data"]["ca-certificates"]  # type: ignore[index]
    assert "--imagePullSecrets=regcred" in ctr["args"]


# -- install mode --------------------------------------------------------------------


def test_install_mode_installs_the_release_and_removes_it(
    some_cluster: ClusterUnderTest, tmp_path: Path
) -> None:
    """The release installs with the seed's values (fake kubelets make its pods Running),
    its objects exist, and leaving the context removes release and namespace. The local
    environment's own Kyverno already owns the CRDs, so this release skips them."""
    _need_helm()
    run_id = "t" + secrets.token_hex(4)
    namespace = f"sc-kyverno-{run_id}"
    values_file = tmp_path / "values.yaml"
    values_file.write_text("crds:\n  install: false\n")
    settings = Settings(
        target="cluster",
        kyverno_mode="install",
        kyverno_namespace=namespace,
        kyverno_values=values_file,
    )
    registry = Registry(
        "registry.example:5000", username=some_cluster.username, password=some_cluster.password
    )
    cluster = Cluster(some_cluster.kubeconfig)
    apps = client.AppsV1Api(cluster.api)
    h = helm.Helm.pinned(some_cluster.kubeconfig)
    with install.kyverno_release(settings, cluster, registry, run_id) as release:
        (listed,) = [r for r in h.releases(namespace) if r["name"] == "kyverno"]
        assert listed["status"] == "deployed"
        ns = cluster.core.read_namespace(namespace)
        assert ns.metadata.labels[RUN_LABEL] == run_id and release.created_namespace
        deploy = apps.read_namespaced_deployment("kyverno-admission-controller", namespace)
        assert deploy.spec.replicas == 1
        (ctr,) = [c for c in deploy.spec.template.spec.containers if c.name == "kyverno"]
        assert "--imagePullSecrets=regcred" in ctr.args
        secret = cluster.core.read_namespaced_secret("regcred", namespace)
        assert secret.type == "kubernetes.io/dockerconfigjson"
        auths = json.loads(base64.b64decode(secret.data[".dockerconfigjson"]))["auths"]
        expected = f"{some_cluster.username}:{some_cluster.password}"
        assert base64.b64decode(auths["registry.example:5000"]["auth"]).decode() == expected
        assert cluster.core.read_namespaced_service("kyverno-svc", namespace)
    assert not [r for r in h.releases(namespace) if r["name"] == "kyverno"]
    with pytest.raises(ApiException) as gone:
        apps.read_namespaced_deployment("kyverno-admission-controller", namespace)
    assert gone.value.status == 404
    # The environment's own Kyverno (webhooks by URL) was left alone.
    names = {w.metadata.name for w in cluster.admreg.list_validating_webhook_configuration().items}
    assert "kyverno-policy-validating-webhook-cfg" in names


def test_install_mode_without_real_kubelets_stops_at_the_webhooks(
    some_cluster: ClusterUnderTest, tmp_path: Path
) -> None:
    """The whole suite in install mode: the release installs, but its pods only pretend
    to run, so its Kyverno never registers webhooks. One error says so, no test runs, and
    the release is gone afterwards."""
    _need_helm()
    namespace = "sc-kyverno-" + secrets.token_hex(3)
    values_file = tmp_path / "values.yaml"
    values_file.write_text("crds:\n  install: false\n")
    outcome = some_cluster.run(
        tmp_path,
        "--kyverno-mode",
        "install",
        "--kyverno-namespace",
        namespace,
        "--kyverno-values",
        str(values_file),
        env={"SIGNCHECK_TIMEOUT_KYVERNO_READY": "5"},
    )
    assert_one_error(
        outcome,
        "Kyverno is installed but its webhooks are not ready",
        f"not registered by the Kyverno in namespace {namespace}",
        code=ENVIRONMENT,
    )
    h = helm.Helm.pinned(some_cluster.kubeconfig)
    assert not h.releases(namespace), "the run's release was left behind"


# -- existing mode, broken Kyverno ---------------------------------------------------


@pytest.fixture(scope="module")
def doomed_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterUnderTest]:
    """An environment of its own: this module breaks its Kyverno on purpose."""
    yield from _boot(tmp_path_factory)


def test_kyverno_down_then_gone(doomed_cluster: ClusterUnderTest, tmp_path: Path) -> None:
    """Control first (healthy: the preflight passes and the suite runs), then Kyverno
    killed with its fail-closed webhooks still registered, then its webhook configurations
    removed, then Kyverno's CRDs removed: each a different single error."""
    control = doomed_cluster.run(
        tmp_path / "control", tests=("tests/test_seed.py::test_policy_ready",)
    )
    assert control.returncode == 0, control.output[-3000:]

    os.kill(doomed_cluster.env.info.pids["kyverno"], signal.SIGKILL)
    down = doomed_cluster.run(tmp_path / "down")
    assert_one_error(
        down,
        "Kyverno is installed but its webhooks are not ready",
        "the API server could not call them",
        code=ENVIRONMENT,
    )

    cluster = Cluster(doomed_cluster.kubeconfig)
    label = install.KYVERNO_WEBHOOK_LABEL
    for w in cluster.admreg.list_validating_webhook_configuration(label_selector=label).items:
        cluster.admreg.delete_validating_webhook_configuration(w.metadata.name)
    for w in cluster.admreg.list_mutating_webhook_configuration(label_selector=label).items:
        cluster.admreg.delete_mutating_webhook_configuration(w.metadata.name)
    unregistered = doomed_cluster.run(
        tmp_path / "unregistered", env={"SIGNCHECK_TIMEOUT_KYVERNO_READY": "3"}
    )
    assert_one_error(
        unregistered,
        "Kyverno is installed but its webhooks are not ready",
        "kyverno-policy-validating-webhook-cfg",
        code=ENVIRONMENT,
    )

    ext = client.ApiextensionsV1Api(cluster.api)
    for crd in ext.list_custom_resource_definition().items:
        if crd.spec.group == "kyverno.io":
            ext.delete_custom_resource_definition(crd.metadata.name)
    for _ in range(50):  # CRD removal is asynchronous (its objects are finalised first)
        try:
            cluster.custom.list_cluster_custom_object("kyverno.io", "v1", "clusterpolicies")
        except ApiException as err:
            if err.status == 404:
                break
        time.sleep(0.2)
    gone = doomed_cluster.run(tmp_path / "gone")
    assert_one_error(
        gone, "Kyverno is not installed in this cluster", "--kyverno-mode install", code=ENVIRONMENT
    )

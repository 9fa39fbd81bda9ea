"""The real local environment: pods run on kwok nodes, namespaces go away, Kyverno denies
an unsigned image with its own words, and the CLI survives a killed service and a killed
parent. Booted once per session (`local_env`); the CLI tests boot one more beside it,
which also shows two environments running side by side."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes.client.exceptions import ApiException

from signcheck.localenv import LocalEnv
from signcheck.localenv import kubeapi as kubelib
from signcheck.localenv.ports import is_listening
from signcheck.localenv.probes import http_get
from signcheck.localenv.process import is_alive
from signcheck.wait import NotYet, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def kube(local_env: LocalEnv) -> Iterator[kubelib.Kube]:
    with kubelib.Kube(Path(local_env.info.kubeconfig)) as k:
        yield k


@pytest.fixture
def namespace(kube: kubelib.Kube) -> Iterator[str]:
    name = "t-" + secrets.token_hex(4)
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def default_sa() -> bool:
        try:
            kube.core.read_namespaced_service_account("default", name)
        except ApiException as err:
            raise NotYet(f"default ServiceAccount: {err.status}") from None
        return True

    wait_for(f"the default ServiceAccount in {name}", default_sa, timeout=30)
    yield name
    kube.core.delete_namespace(name)


def pod(name: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": image}]},
    }


def test_info_points_at_live_services(local_env: LocalEnv) -> None:
    info = local_env.info
    assert Path(info.kubeconfig).is_file()
    assert info.apiserver_url.startswith("https://127.0.0.1:")
    status, _ = http_get(f"{info.registry.url}/v2/")
    assert status == 200
    assert set(info.pids) >= {"etcd", "kube-apiserver", "kwok", "kyverno", "registry"}
    assert all(is_alive(pid) for pid in info.pids.values())
    assert info.versions["kube-apiserver"] == "v1.35.4"
    json.loads(info.to_json())


def test_pod_reaches_running_on_a_kwok_node(
    local_env: LocalEnv, kube: kubelib.Kube, namespace: str
) -> None:
    kube.core.create_namespaced_pod(namespace, pod("runner", "example.invalid/app:1"))

    def running() -> Any:
        got = kube.core.read_namespaced_pod("runner", namespace)
        if got.status.phase != "Running":
            raise NotYet(f"phase {got.status.phase}, node {got.spec.node_name}")
        return got

    got = wait_for("pod runner to be Running", running, timeout=30)
    assert got.spec.node_name in local_env.info.nodes


def test_namespace_deleted_goes_away(kube: kubelib.Kube) -> None:
    name = "gone-" + secrets.token_hex(4)
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "content", "namespace": name},
            "data": {"k": "v"},
        }
    )
    kube.core.delete_namespace(name)

    def gone() -> bool:
        try:
            ns = kube.core.read_namespace(name)
        except ApiException as err:
            if err.status == 404:
                return True
            raise
        raise NotYet(f"phase {ns.status.phase}")

    wait_for(f"namespace {name} to be deleted", gone, timeout=60)


def _public_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def verify_images_policy(name: str, registry: str) -> dict[str, Any]:
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": name},
        "spec": {
            "webhookTimeoutSeconds": 20,
            "rules": [
                {
                    "name": "check-signature",
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "verifyImages": [
                        {
                            "imageReferences": [f"{registry}/*"],
                            "failureAction": "Enforce",
                            "attestors": [
                                {
                                    "entries": [
                                        {
                                            "keys": {
                                                "publicKeys": _public_key_pem(),
                                                "rekor": {"ignoreTlog": True},
                                                "ctlog": {"ignoreSCT": True},
                                            }
                                        }
                                    ]
                                }
                            ],
                        }
                    ],
                }
            ],
        },
    }


def test_kyverno_denies_an_unsigned_image(
    local_env: LocalEnv, kube: kubelib.Kube, namespace: str
) -> None:
    name = "verify-" + secrets.token_hex(3)
    policy = verify_images_policy(name, local_env.info.registry.host)
    kube.custom.create_cluster_custom_object("kyverno.io", "v1", "clusterpolicies", policy)
    try:

        def ready() -> bool:
            got = kube.custom.get_cluster_custom_object("kyverno.io", "v1", "clusterpolicies", name)
            conds = (got.get("status") or {}).get("conditions") or []
            if not any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
                raise NotYet(f"conditions {conds}")
            return True

        wait_for(f"ClusterPolicy {name} Ready", ready, timeout=60)
        # A unique tag: Kyverno caches verification results by image reference.
        image = f"{local_env.info.registry.host}/signcheck/unsigned:{secrets.token_hex(4)}"
        with pytest.raises(ApiException) as denied:
            kube.core.create_namespaced_pod(namespace, pod("unsigned", image))
        message = " ".join(json.loads(denied.value.body)["message"].split())
        assert 'admission webhook "mutate.kyverno.svc-fail" denied the request' in message
        # The rule's message is YAML-quoted when it holds ": " (it does: the cosign error).
        assert re.search(
            rf"{name}: check-signature: '?failed to verify image {re.escape(image)}", message
        ), message
        assert re.search(r"resource Pod/\S+/unsigned was blocked", message)
    finally:
        kube.custom.delete_cluster_custom_object("kyverno.io", "v1", "clusterpolicies", name)


def test_audit_policy_produces_a_policy_report(kube: kubelib.Kube, namespace: str) -> None:
    """Only the reports controller turns admission results into PolicyReports."""
    name = "audit-" + secrets.token_hex(3)
    policy = {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": name},
        "spec": {
            "rules": [
                {
                    "name": "team-label",
                    "match": {
                        "any": [{"resources": {"kinds": ["ConfigMap"], "namespaces": [namespace]}}]
                    },
                    "validate": {
                        "failureAction": "Audit",
                        "message": "label team is required",
                        "pattern": {"metadata": {"labels": {"team": "?*"}}},
                    },
                }
            ]
        },
    }
    kube.custom.create_cluster_custom_object("kyverno.io", "v1", "clusterpolicies", policy)
    try:

        def ready() -> bool:
            got = kube.custom.get_cluster_custom_object("kyverno.io", "v1", "clusterpolicies", name)
            conds = (got.get("status") or {}).get("conditions") or []
            if not any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
                raise NotYet(f"conditions {conds}")
            return True

        wait_for(f"ClusterPolicy {name} Ready", ready, timeout=60)
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "unlabelled", "namespace": namespace},
                "data": {"k": "v"},
            }
        )

        def failed_result() -> dict[str, Any]:
            reports = kube.custom.list_namespaced_custom_object(
                "wgpolicyk8s.io", "v1alpha2", namespace, "policyreports"
            )["items"]
            for report in reports:
                for result in report.get("results", []):
                    if result["policy"] == name and result["result"] == "fail":
                        return dict(result)
            raise NotYet(f"{len(reports)} report(s), no failed result for {name} yet")

        result = wait_for("a PolicyReport with the audit failure", failed_result, timeout=90)
        assert result["rule"] == "team-label"
    finally:
        kube.custom.delete_cluster_custom_object("kyverno.io", "v1", "clusterpolicies", name)


# -- the CLI, from other processes ------------------------------------------------------


def signcheck(
    *args: str, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "signcheck", "env", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cli_env(tmp_path: Path, local_env: LocalEnv) -> dict[str, str]:
    # Depends on local_env so both environments run at once: side by side must work.
    return {**os.environ, "SIGNCHECK_RUN_DIR": str(tmp_path / "runs")}


def test_cli_status_reports_a_killed_service_and_down_survives_a_killed_parent(
    cli_env: dict[str, str],
) -> None:
    up = signcheck("up", "--json", "--registry-auth", env=cli_env)
    assert up.returncode == 0, up.stderr + up.stdout
    info = json.loads(up.stdout)
    creds = json.loads(Path(info["registry"]["credentials_path"]).read_text())
    assert creds["password"] not in up.stdout + up.stderr
    run_dir = Path(info["run_dir"])
    state = json.loads((run_dir / "state.json").read_text())
    services = {s["name"]: s for s in state["services"]}
    ports = [p for svc_ports in info["ports"].values() for p in svc_ports.values()]
    with kubelib.Kube(Path(info["kubeconfig"])) as k:
        assert len(kubelib.kyverno_webhooks(k)) >= 4

    ok = signcheck("status", env=cli_env)
    assert ok.returncode == 0, ok.stdout
    assert "kube-scheduler" in ok.stdout and "DEAD" not in ok.stdout
    logs = signcheck("logs", "kyverno", "--tail", "5", env=cli_env)
    assert logs.returncode == 0 and len(logs.stdout.splitlines()) == 5

    os.kill(services["kube-scheduler"]["pid"], signal.SIGKILL)
    time.sleep(0.5)
    bad = signcheck("status", env=cli_env)
    assert bad.returncode == 1
    assert re.search(r"kube-scheduler\s+pid \d+\s+DEAD", bad.stdout), bad.stdout

    os.kill(state["owner_pid"], signal.SIGKILL)  # the supervisor: the services' parent
    time.sleep(0.5)
    assert "DEAD (abandoned run)" in signcheck("status", env=cli_env).stdout

    dn = signcheck("down", env=cli_env)
    assert dn.returncode == 0, dn.stderr
    assert "deleted ValidatingWebhookConfiguration/kyverno-resource-validating-webhook-cfg" in (
        dn.stdout
    )
    assert not run_dir.exists()
    for svc in services.values():
        assert not is_alive(svc["pid"], svc["start_time"]), svc["name"]
    assert not [p for p in ports if is_listening(p)]
    assert "no runs" in signcheck("status", env=cli_env).stdout

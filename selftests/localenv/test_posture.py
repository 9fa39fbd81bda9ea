"""Posture checks against the real local environment: on a healthy environment the facts name
Kyverno's webhooks with their failure policies and the namespaces it never sees; after a
change to Kyverno's ConfigMap (a group excluded, a namespace filtered out, a namespace left out
of the webhooks' selector) and a ValidatingAdmissionPolicy on pods, the matching findings
name what changed; an identity that may read nothing gets `info`, never an exception.

Kyverno registers its pod webhooks only for policies that match pods, so the module applies two
(Fail and Ignore) that verify an image reference no test uses. Everything changed is restored.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes import client

from signcheck.clients.k8s import Cluster
from signcheck.diagnose import posture
from signcheck.localenv import LocalEnv
from signcheck.localenv.services.kyverno import CONFIGMAP, NAMESPACE
from signcheck.tools import helm, pins
from signcheck.verdict.model import Finding
from signcheck.wait import until

pytestmark = pytest.mark.integration

POLICIES = ("kyverno.io", "v1", "clusterpolicies")
MUTATE_CFG = "kyverno-resource-mutating-webhook-cfg"


def by_id(findings: list[Finding]) -> dict[str, Finding]:
    return {f.id: f for f in findings}


def _policy(name: str, failure_policy: str, pem: str) -> dict[str, Any]:
    keys = {"publicKeys": pem, "rekor": {"ignoreTlog": True}, "ctlog": {"ignoreSCT": True}}
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": name},
        "spec": {
            "background": False,
            "webhookConfiguration": {"failurePolicy": failure_policy, "timeoutSeconds": 15},
            "rules": [
                {
                    "name": "verify",
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "verifyImages": [
                        {
                            "imageReferences": ["posture.invalid/*"],
                            "failureAction": "Enforce",
                            "attestors": [{"entries": [{"keys": keys}]}],
                        }
                    ],
                }
            ],
        },
    }


def _apply(cluster: Cluster, obj: dict[str, Any], namespace: str | None = None) -> None:
    resource = cluster.dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    resource.create(body=obj, namespace=namespace)


def _mutate_hooks(cluster: Cluster) -> dict[str, dict[str, Any]]:
    cfg = cluster.admreg.read_mutating_webhook_configuration(MUTATE_CFG)
    data = cluster.api.sanitize_for_serialization(cfg)
    return {w["name"]: w for w in data.get("webhooks") or []}


@pytest.fixture(scope="module")
def cluster(local_env: LocalEnv) -> Cluster:
    return Cluster(Path(local_env.info.kubeconfig))


@pytest.fixture(scope="module")
def pod_policies(cluster: Cluster) -> Iterator[None]:
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    names = [f"posture-{fp.lower()}-{secrets.token_hex(3)}" for fp in ("Fail", "Ignore")]
    for name, fp in zip(names, ("Fail", "Ignore"), strict=True):
        cluster.create_object(*POLICIES, _policy(name, fp, pem))
    try:
        until(
            lambda: (
                {"mutate.kyverno.svc-fail", "mutate.kyverno.svc-ignore"}
                <= set(_mutate_hooks(cluster))
            ),
            what=f"Kyverno's pod webhooks in {MUTATE_CFG}",
            timeout=60,
            interval=0.3,
        )
        yield
    finally:
        for name in names:
            cluster.delete_object(*POLICIES, name)


@pytest.fixture
def scratch_namespaces(cluster: Cluster) -> Iterator[list[str]]:
    names = [f"posture-{secrets.token_hex(3)}" for _ in range(2)]
    for name in names:
        cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield names
    for name in names:
        cluster.delete_namespace(name, wait=None)


def test_healthy_environment_facts(cluster: Cluster, pod_policies: None) -> None:
    findings, facts = posture.check(cluster, NAMESPACE)
    json.dumps(facts)  # JSON-able, as the report needs
    hooks = facts["kyverno_webhook_configurations"][MUTATE_CFG]["webhooks"]
    policies = {w["name"]: w["failurePolicy"] for w in hooks}
    assert policies["mutate.kyverno.svc-fail"] == "Fail"
    assert policies["mutate.kyverno.svc-ignore"] == "Ignore"
    assert all(w["acts_on_pods"] for w in hooks)
    found = by_id(findings)
    # The environment's ConfigMap (the chart's defaults) keeps Kyverno from these, by name.
    system = found["POSTURE-SYSTEM-NAMESPACES"]
    for ns in ("kube-system", "kube-public", "kube-node-lease", NAMESPACE):
        assert ns in system.title
    assert "[*/*,kube-public,*]" in system.evidence
    assert "the namespaceSelector in ConfigMap kyverno's `webhooks`" in system.evidence
    assert system.severity == "info" and system.source == "posture"
    failopen = found["POSTURE-FAILOPEN"]
    assert failopen.severity == "medium"
    assert "mutate.kyverno.svc-ignore" in failopen.title
    assert "mutate.kyverno.svc-fail" not in failopen.title
    assert not [f.line() for f in findings if f.severity == "high"]
    # Kyverno runs as a process here: its flags are not the cluster's to show, a fact only.
    assert facts["kyverno"]["flags_readable"] is False
    assert facts["kyverno"]["runs"].startswith("outside the cluster")
    assert "POSTURE-VERIFY-CACHE" not in found
    assert found["POSTURE-VERSION-UNKNOWN"].severity == "info"
    assert facts["unreadable"] == {}


def test_kyverno_installed_by_the_chart_shows_its_flags_and_version(
    cluster: Cluster, scratch_namespaces: list[str]
) -> None:
    """The pinned chart, rendered by Helm with fail-open forced and a 2 h cache, applied to a
    namespace of its own. Its Deployment is scaled to zero (the chart refuses to render
    that): the objects are what is read, nothing needs to run."""
    for name in ("helm", "kyverno"):
        if not pins.resolve(name).ok:
            pytest.skip(f"{name} not built")
    ns = scratch_namespaces[0]
    values = {
        "admissionController": {
            "container": {"extraArgs": {"imageVerifyCacheTTLDuration": "2h"}},
        },
        "features": {"forceFailurePolicyIgnore": {"enabled": True}},
    }
    docs = helm.Helm.pinned().template(values, namespace=ns)
    for doc in docs:
        if doc["kind"] == "Deployment" and doc["metadata"]["name"].endswith("admission-controller"):
            _apply(cluster, {**doc, "spec": {**doc["spec"], "replicas": 0}}, ns)
        elif doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == CONFIGMAP:
            _apply(cluster, doc, ns)
    findings, facts = posture.check(cluster, ns)
    kyverno = facts["kyverno"]
    assert kyverno["runs"] == f"in the cluster: Deployment {ns}/kyverno-admission-controller"
    assert kyverno["version"] == "v1.19.1"
    assert kyverno["flags"]["forceFailurePolicyIgnore"] == {
        "value": "true",
        "from": "--forceFailurePolicyIgnore",
    }
    assert kyverno["flags"]["imageVerifyCacheEnabled"] == {"value": "true", "from": "default"}
    found = by_id(findings)
    assert found["POSTURE-FORCE-FAILURE-POLICY-IGNORE"].severity == "medium"
    cache = found["POSTURE-VERIFY-CACHE"]
    assert "up to 2h" in cache.title and "GHSA-2r43-6962-xcw5" in cache.title
    assert "--imageVerifyCacheEnabled=false" in cache.remediation
    assert found["POSTURE-ADVISORY-GHSA-2r43-6962-xcw5"].severity == "high"
    # The chart's ConfigMap: its default exclusions, this namespace among them.
    assert ns in found["POSTURE-SYSTEM-NAMESPACES"].title
    assert kyverno["configmap"]["settings"]["excludeGroups"]["excluded"] == ["system:nodes"]
    assert "POSTURE-EXCLUDED-REQUESTERS" not in found


def test_known_version_is_matched_against_the_advisories(cluster: Cluster) -> None:
    findings, facts = posture.check(cluster, NAMESPACE, kyverno_version="v1.19.1")
    assert facts["kyverno"]["version_source"] == "as the run's target reported it"
    advisory = by_id(findings)["POSTURE-ADVISORY-GHSA-2r43-6962-xcw5"]
    assert advisory.severity == "high" and advisory.affected
    assert "useCache: false" in advisory.remediation
    assert "POSTURE-VERSION-UNKNOWN" not in by_id(findings)
    assert not [f for f in findings if f.id == "POSTURE-ADVISORY-GHSA-m3cq-xcx9-3gvm"]


def test_configmap_changes_are_reported_by_name(
    cluster: Cluster, pod_policies: None, scratch_namespaces: list[str]
) -> None:
    filtered, unselected = scratch_namespaces
    group = f"posture-team-{secrets.token_hex(3)}"
    original = dict(cluster.core.read_namespaced_config_map(CONFIGMAP, NAMESPACE).data or {})
    webhooks = json.loads(original["webhooks"])
    webhooks["namespaceSelector"]["matchExpressions"].append(
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [unselected]}
    )
    changed = {
        "excludeGroups": original.get("excludeGroups", "") + f",{group}",
        "resourceFilters": original["resourceFilters"] + f"[Pod,{filtered},*]",
        "webhooks": json.dumps(webhooks),
    }

    def selector_has(ns: str) -> bool:
        hook = _mutate_hooks(cluster)["mutate.kyverno.svc-fail"]
        return ns in json.dumps(hook.get("namespaceSelector"))

    cluster.core.patch_namespaced_config_map(CONFIGMAP, NAMESPACE, {"data": changed})
    try:
        # Kyverno watches its ConfigMap and puts the new selector on its webhooks itself.
        until(lambda: selector_has(unselected), what="Kyverno's new namespaceSelector", timeout=60)
        findings, facts = posture.check(cluster, NAMESPACE)
    finally:
        cluster.core.patch_namespaced_config_map(CONFIGMAP, NAMESPACE, {"data": original})
        until(lambda: not selector_has(unselected), what="the selector restored", timeout=60)
    found = by_id(findings)
    unseen = found["POSTURE-UNSEEN-NAMESPACES"]
    assert unseen.severity == "high"
    assert filtered in unseen.title and unselected in unseen.title
    assert f"{filtered}: resourceFilters entry [Pod,{filtered},*]" in unseen.evidence
    assert f"{unselected}: the namespaceSelector in ConfigMap kyverno's `webhooks`" in (
        unseen.evidence
    )
    assert "default" not in unseen.title
    excluded = found["POSTURE-EXCLUDED-REQUESTERS"]
    assert group in excluded.title and excluded.severity == "medium"
    assert "system:nodes" not in excluded.title  # the chart's default is not a finding
    assert facts["kyverno"]["configmap"]["settings"]["excludeGroups"]["excluded"][-1] == group


def test_admission_policy_on_pods_is_reported(cluster: Cluster) -> None:
    name = f"posture-vap-{secrets.token_hex(3)}"
    api = client.AdmissionregistrationV1Api(cluster.api)
    _apply(
        cluster,
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["pods"],
                        }
                    ]
                },
                "validations": [{"expression": "true"}],
            },
        },
    )
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"]},
    }
    _apply(cluster, binding)
    try:
        findings, facts = posture.check(cluster, NAMESPACE)
    finally:
        api.delete_validating_admission_policy_binding(name)
        api.delete_validating_admission_policy(name)
    other = by_id(findings)["POSTURE-OTHER-ADMISSION"]
    assert f"ValidatingAdmissionPolicy {name} (bound)" in other.title
    assert other.severity == "info"  # it can deny, not change, a pod
    vaps = facts["other_admission_on_pods"]["validating_admission_policies"]
    assert [v["name"] for v in vaps] == [name]
    assert vaps[0]["bindings"][0]["validationActions"] == ["Deny"]


def test_an_identity_that_may_read_nothing_gets_info_not_an_exception(
    cluster: Cluster, local_env: LocalEnv, tmp_path: Path
) -> None:
    ns, sa = "default", f"posture-nobody-{secrets.token_hex(3)}"
    cluster.core.create_namespaced_service_account(
        ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=sa))
    )
    try:
        token = cluster.core.create_namespaced_service_account_token(
            sa,
            ns,
            client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[])),
        ).status.token
        admin = yaml.safe_load(Path(local_env.info.kubeconfig).read_text())
        admin["users"][0]["user"] = {"token": token}
        kubeconfig = tmp_path / "nobody.yaml"
        kubeconfig.write_text(yaml.safe_dump(admin))
        findings, facts = posture.check(Cluster(kubeconfig), NAMESPACE)
    finally:
        cluster.core.delete_namespaced_service_account(sa, ns)
    found = by_id(findings)
    unreadable = found["POSTURE-UNREADABLE"]
    assert unreadable.severity == "info"
    assert "namespaces: HTTP 403" in unreadable.evidence
    assert "MutatingWebhookConfiguration: HTTP 403" in unreadable.evidence
    assert "forbidden" in unreadable.evidence
    assert set(facts["unreadable"]) >= {"namespaces", f"ConfigMap {NAMESPACE}/{CONFIGMAP}"}
    # Nothing it could not see is named as a cause.
    assert [f.id for f in findings if f.severity != "info"] == []
    assert "POSTURE-NO-POD-WEBHOOK" not in found

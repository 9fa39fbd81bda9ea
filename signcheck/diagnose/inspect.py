"""What the diagnosis reads from the cluster when the canary fails: the live policy, Kyverno's
webhook configurations and ConfigMap, who the run is to the API server, the namespace's
labels, and every other admission webhook and admission policy that acts on pods.

Each read is best effort: what cannot be read is recorded in `unreadable` with the reason,
so a cause is only ever named from something that was actually seen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kubernetes import client

from signcheck.clients.k8s import Cluster
from signcheck.diagnose import webhooks

T = TypeVar("T")

KYVERNO_WEBHOOK_LABEL = "webhook.kyverno.io/managed-by=kyverno"


@dataclass
class Inspection:
    policy: dict[str, Any] | None = None
    policy_read: bool = False
    kyverno_webhooks: list[dict[str, Any]] = field(default_factory=list)
    other_webhooks: list[dict[str, Any]] = field(default_factory=list)
    """Non-Kyverno webhook configurations with a webhook whose rules cover pods."""
    admission_policies: list[dict[str, Any]] = field(default_factory=list)
    """ValidatingAdmissionPolicies (with their bindings) whose rules cover pods."""
    configmap: dict[str, str] | None = None
    user: str = ""
    groups: list[str] = field(default_factory=list)
    namespace_labels: dict[str, str] | None = None
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)
    """What could not be read, and why (RBAC, not served)."""

    def as_dict(self) -> dict[str, Any]:
        def webhook(cfg: dict[str, Any]) -> dict[str, Any]:
            return {
                "kind": cfg.get("kind"),
                "name": cfg.get("metadata", {}).get("name"),
                "webhooks": [
                    {
                        "name": w.get("name"),
                        "failurePolicy": w.get("failure_policy") or w.get("failurePolicy"),
                        "namespaceSelector": w.get("namespace_selector")
                        or w.get("namespaceSelector"),
                        "objectSelector": w.get("object_selector") or w.get("objectSelector"),
                    }
                    for w in cfg.get("webhooks") or []
                ],
            }

        return {
            "policy": _policy_summary(self.policy) if self.policy_read else "not readable",
            "kyverno_webhooks": [webhook(c) for c in self.kyverno_webhooks],
            "other_webhooks_on_pods": [webhook(c) for c in self.other_webhooks],
            "admission_policies_on_pods": [
                p.get("metadata", {}).get("name") for p in self.admission_policies
            ],
            "kyverno_configmap": self.configmap,
            "requester": {"user": self.user, "groups": self.groups},
            "namespace_labels": self.namespace_labels,
            "policy_exceptions": [
                f"{e['metadata'].get('namespace')}/{e['metadata'].get('name')}"
                for e in self.exceptions
            ],
            "unreadable": self.unreadable,
        }


def _policy_summary(policy: dict[str, Any] | None) -> dict[str, Any] | str:
    if policy is None:
        return "absent"
    spec = policy.get("spec", {})
    return {
        "name": policy.get("metadata", {}).get("name"),
        "validationFailureAction": spec.get("validationFailureAction"),
        "ready": ready(policy),
    }


def ready(policy: dict[str, Any]) -> tuple[bool | None, str]:
    """(Ready, message) from the policy's status conditions; None when not reported."""
    for cond in policy.get("status", {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True", str(cond.get("message") or "")
    return None, ""


def inspect(
    cluster: Cluster,
    *,
    kyverno_namespace: str,
    namespace: str,
    policy_name: str | None,
) -> Inspection:
    found = Inspection()
    api = cluster.api

    def read(what: str, fn: Callable[[], T], default: T, *, absent_ok: bool = False) -> T:
        try:
            return fn()
        except Exception as err:  # RBAC, an API not served, a network error: say which
            status = getattr(err, "status", None)
            if not (absent_ok and status == 404):
                found.unreadable[what] = type(err).__name__ + (f" {status}" if status else "")
            return default

    if policy_name:
        found.policy = read(
            "clusterpolicy",
            lambda: cluster.get_object("kyverno.io", "v1", "clusterpolicies", policy_name),
            None,
        )
        found.policy_read = "clusterpolicy" not in found.unreadable
    no_objects: list[dict[str, Any]] = []
    configs = read("webhook configurations", lambda: cluster.webhook_configurations(""), no_objects)
    for cfg in configs:
        labels = cfg.get("metadata", {}).get("labels") or {}
        if labels.get("webhook.kyverno.io/managed-by") == "kyverno":
            found.kyverno_webhooks.append(cfg)
        elif any(webhooks.covers_pods(w.get("rules")) for w in webhooks.cfg_webhooks(cfg)):
            found.other_webhooks.append(cfg)
    cm = read(
        "kyverno configmap",
        lambda: cluster.core.read_namespaced_config_map("kyverno", kyverno_namespace),
        None,
    )
    found.configmap = dict(cm.data or {}) if cm is not None else None
    review = read(
        "selfsubjectreview",
        lambda: client.AuthenticationV1Api(api).create_self_subject_review(
            client.V1SelfSubjectReview()
        ),
        None,
    )
    if review is not None and review.status and review.status.user_info:
        found.user = review.status.user_info.username or ""
        found.groups = list(review.status.user_info.groups or [])
    ns = read("namespace", lambda: cluster.core.read_namespace(namespace), None)
    if ns is not None:
        found.namespace_labels = dict(ns.metadata.labels or {})
    vaps: list[Any] = read(
        "validatingadmissionpolicies",
        lambda: list(
            client.AdmissionregistrationV1Api(api).list_validating_admission_policy().items
        ),
        [],
    )
    for vap in vaps:
        data = api.sanitize_for_serialization(vap)
        if webhooks.policy_covers_pods(data):
            found.admission_policies.append(data)
    # Not served (404) when Kyverno's CRDs lack it: then there are none to apply.
    found.exceptions = read(
        "policyexceptions",
        lambda: cluster.custom.list_cluster_custom_object(
            "kyverno.io", "v2", "policyexceptions"
        ).get("items", []),
        [],
        absent_ok=True,
    )
    return found

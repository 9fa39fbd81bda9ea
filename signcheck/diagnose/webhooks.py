"""Admission webhook configurations and admission policies as the API server applies them to
a pod: which rules cover pod creation, which namespaces a selector leaves out, and what a
report should say about each (pure functions over the API's JSON)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from signcheck.diagnose import selectors

KYVERNO_WEBHOOK_LABEL = ("webhook.kyverno.io/managed-by", "kyverno")
"""How Kyverno v1.19.1 labels every webhook configuration it registers (`objectMeta` in
`pkg/controllers/webhook/utils.go`)."""

KYVERNO_MANAGED_LABEL = ("app.kubernetes.io/managed-by", "kyverno")
"""How it labels the ValidatingAdmissionPolicies and bindings it generates from policies."""

POD_OPERATIONS = ("CREATE", "UPDATE")
"""A pod's image is set on CREATE and may be changed on UPDATE (`spec.containers[*].image`
is mutable)."""


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def name_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def is_kyverno_webhook(cfg: Mapping[str, Any], kyverno_namespace: str) -> bool:
    key, value = KYVERNO_WEBHOOK_LABEL
    if labels_of(cfg).get(key) == value:
        return True
    services = [((w.get("clientConfig") or {}).get("service") or {}) for w in cfg_webhooks(cfg)]
    return bool(services) and all(s.get("namespace") == kyverno_namespace for s in services)


def is_kyverno_generated(obj: Mapping[str, Any]) -> bool:
    key, value = KYVERNO_MANAGED_LABEL
    return labels_of(obj).get(key) == value


def cfg_webhooks(cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [w for w in cfg.get("webhooks") or [] if isinstance(w, dict)]


def _rule_covers_pods(rule: Mapping[str, Any]) -> bool:
    groups = rule.get("apiGroups") or []
    versions = rule.get("apiVersions") or []
    resources = rule.get("resources") or []
    operations = rule.get("operations") or []
    return (
        any(g in ("", "*") for g in groups)
        and any(v in ("v1", "*") for v in versions)
        and any(r in ("pods", "*", "*/*") for r in resources)
        and any(o == "*" or o in POD_OPERATIONS for o in operations)
    )


def covers_pods(rules: list[dict[str, Any]] | None) -> bool:
    """Whether any rule sends pod CREATE or UPDATE requests (not only a subresource)."""
    return any(_rule_covers_pods(r) for r in rules or [] if isinstance(r, dict))


def client_of(webhook: Mapping[str, Any]) -> str:
    """Where the API server sends the request: a URL, or `service namespace/name:port/path`."""
    config = webhook.get("clientConfig") or {}
    if config.get("url"):
        return str(config["url"])
    svc = config.get("service") or {}
    return f"service {svc.get('namespace')}/{svc.get('name')}:{svc.get('port', 443)}" + str(
        svc.get("path") or ""
    )


def webhook_facts(webhook: Mapping[str, Any]) -> dict[str, Any]:
    """What a report says about one webhook (no CA bundle: it is long and public anyway)."""
    return {
        "name": webhook.get("name"),
        # The API server defaults an unset failurePolicy to Fail.
        "failurePolicy": webhook.get("failurePolicy") or "Fail",
        "timeoutSeconds": webhook.get("timeoutSeconds"),
        "namespaceSelector": webhook.get("namespaceSelector") or {},
        "objectSelector": webhook.get("objectSelector") or {},
        "matchConditions": [c.get("name") for c in webhook.get("matchConditions") or []],
        "reinvocationPolicy": webhook.get("reinvocationPolicy"),
        "acts_on_pods": covers_pods(webhook.get("rules")),
        "calls": client_of(webhook),
    }


def configuration_facts(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "kind": cfg.get("kind"),
        "name": name_of(cfg),
        "webhooks": [webhook_facts(w) for w in cfg_webhooks(cfg)],
    }


def pod_webhooks(configs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(configuration, webhook) for every webhook that covers pod CREATE/UPDATE."""
    return [(c, w) for c in configs for w in cfg_webhooks(c) if covers_pods(w.get("rules"))]


def unselected(
    selector: Mapping[str, Any] | None, namespaces: Mapping[str, dict[str, str]]
) -> list[str]:
    """The namespaces (name -> labels) a namespaceSelector leaves out, by name."""
    return sorted(
        ns for ns, labels in namespaces.items() if not selectors.matches(selector, labels)
    )


def selector_is_empty(selector: Mapping[str, Any] | None) -> bool:
    return not selector or not (selector.get("matchLabels") or selector.get("matchExpressions"))


def policy_covers_pods(policy: Mapping[str, Any]) -> bool:
    """A ValidatingAdmissionPolicy's or MutatingAdmissionPolicy's matchConstraints."""
    constraints = (policy.get("spec") or {}).get("matchConstraints") or {}
    return covers_pods(constraints.get("resourceRules"))


def bindings_of(policy_name: str, bindings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for b in bindings if (b.get("spec") or {}).get("policyName") == policy_name]


def policy_facts(policy: Mapping[str, Any], bindings: list[dict[str, Any]]) -> dict[str, Any]:
    spec = policy.get("spec") or {}
    return {
        "name": name_of(policy),
        "failurePolicy": spec.get("failurePolicy") or "Fail",
        "bindings": [
            {
                "name": name_of(b),
                "validationActions": (b.get("spec") or {}).get("validationActions"),
                "matchResources": (b.get("spec") or {}).get("matchResources") or {},
            }
            for b in bindings
        ],
        # A policy without a binding does nothing (the API server applies bound policies).
        "in_effect": bool(bindings),
    }

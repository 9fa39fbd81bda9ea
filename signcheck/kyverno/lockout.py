"""Fail-closed lockout: Kyverno gone while its `failurePolicy: Fail` webhook is registered.

Kyverno adds pod rules to its fail-closed webhooks for as long as some policy needs them and
removes them when the last such policy goes, but only while it runs. A Kyverno that died
mid-run leaves them behind, and then the API server refuses every pod in every namespace
("failed calling webhook"). A run must not leave a cluster like that because of its own
policy.

`probe` asks the API server, with a dry-run pod in `default` (nothing is created), whether a
pod outside any run gets an answer. `release` removes a Kyverno-managed webhook configuration
that locks the cluster out, and only when no Kyverno policy is left that could need it:
Kyverno rebuilds its webhook configurations when it starts again, while deleting one that
other policies rely on would switch their enforcement off.
"""

from __future__ import annotations

import re
import time
from typing import Any

from signcheck.clients.k8s import Cluster
from signcheck.clients.k8sapi import ApiError
from signcheck.errors import EnvironmentNotReady

KYVERNO_WEBHOOKS = "webhook.kyverno.io/managed-by=kyverno"
PROBE_NAMESPACE = "default"
PROBE_IMAGE = "registry.invalid/signcheck/lockout-probe:1"
_FAILED_CALL = re.compile(r'failed calling webhook "(?P<webhook>[^"]+)"')

# Every kind of Kyverno policy whose rules Kyverno turns into webhook rules (a namespaced
# kind listed at cluster scope lists every namespace).
POLICY_RESOURCES = (
    ("kyverno.io", "v1", "clusterpolicies"),
    ("kyverno.io", "v1", "policies"),
    ("policies.kyverno.io", "v1", "imagevalidatingpolicies"),
    ("policies.kyverno.io", "v1", "validatingpolicies"),
    ("policies.kyverno.io", "v1", "mutatingpolicies"),
    ("policies.kyverno.io", "v1", "generatingpolicies"),
)


def probe(cluster: Cluster, namespace: str = PROBE_NAMESPACE) -> str | None:
    """None when a pod outside the run gets an answer (admitted, or denied by a policy);
    the name of the webhook that could not be called when the cluster is locked out."""
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "signcheck-lockout-probe", "namespace": namespace},
        "spec": {"containers": [{"name": "probe", "image": PROBE_IMAGE}]},
    }
    try:
        cluster.dry_run_pod(namespace, body, timeout=40)
    except ApiError as err:
        if found := _FAILED_CALL.search(err.server_message):
            return found.group("webhook")
    return None


def remaining_policies(cluster: Cluster) -> list[str]:
    names: list[str] = []
    for group, version, plural in POLICY_RESOURCES:
        try:
            items = cluster.list_objects(group, version, plural)
        except ApiError as err:
            if err.status == 404:
                continue
            raise
        for item in items:
            meta = item.get("metadata", {})
            where = f"{meta.get('namespace')}/" if meta.get("namespace") else ""
            names.append(f"{plural}/{where}{meta.get('name')}")
    return names


def _configurations_with(cluster: Cluster, webhook: str) -> list[tuple[str, str]]:
    return [
        (cfg["kind"], str(cfg["metadata"]["name"]))
        for cfg in cluster.webhook_configurations(KYVERNO_WEBHOOKS)
        if any(w.get("name") == webhook for w in cfg.get("webhooks") or [])
    ]


def release(cluster: Cluster, attempts: int = 6) -> list[str]:
    """Undo a lockout by Kyverno's own dead webhooks; returns what was done. Raises when the
    cluster stays locked out, naming the webhook and why it was left alone."""
    actions: list[str] = []
    removed: set[str] = set()
    for _ in range(attempts):
        webhook = probe(cluster)
        if webhook is None:
            return actions
        configs = _configurations_with(cluster, webhook)
        if not configs and webhook in removed:
            # Deleted a moment ago: the apiserver calls webhooks from its own cache of the
            # configurations, which lags the delete (seen under load in CI).
            time.sleep(1.0)
            continue
        if not configs:
            raise EnvironmentNotReady(
                f"pods in other namespaces are refused: webhook {webhook} cannot be called, "
                "and it is not one of Kyverno's (not removed by signcheck)"
            )
        others = remaining_policies(cluster)
        if others:
            raise EnvironmentNotReady(
                f"pods in other namespaces are refused: Kyverno's webhook {webhook} cannot be "
                "called (is Kyverno running?); signcheck left it in place because these "
                f"policies still rely on it: {', '.join(others[:10])}"
            )
        removed.add(webhook)
        for kind, name in configs:
            cluster.delete_webhook_configuration(kind, name)
            actions.append(
                f"deleted {kind} {name}: Kyverno is not answering and no policy needs its "
                f"webhook {webhook} (Kyverno recreates it when it starts)"
            )
    if (webhook := probe(cluster)) is not None:
        raise EnvironmentNotReady(
            f"pods in other namespaces are still refused by webhook {webhook} after "
            f"{attempts} removals"
        )
    return actions

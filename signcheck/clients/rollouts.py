"""Deployments changed the way kubectl changes them, and what the ReplicaSet controller says
when admission refuses the pods it creates (the UPD scenarios).

- `kubectl scale` patches the `scale` subresource: Kyverno is asked about Deployments, not
  about `deployments/scale`, so the Deployment itself is never re-judged; the pods the
  ReplicaSet then creates are.
- `kubectl set image` is a strategic merge patch of one container of the pod template.
- `kubectl rollout undo` is kubectl's own JSON patch (`polymorphichelpers/rollback.go`): the
  old revision's ReplicaSet template without its `pod-template-hash` label, and that
  ReplicaSet's annotations (minus the ones kubectl keeps from the Deployment).
- A pod refused at admission is no API error for anyone: the ReplicaSet controller records
  it as a `ReplicaFailure` condition (reason `FailedCreate`) and a `FailedCreate` event,
  both carrying the webhook's answer, and retries with a backoff.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from signcheck.clients.admission import Admission, Admitted, Denied, parse_denial
from signcheck.clients.k8s import Cluster
from signcheck.clients.k8sapi import status_message
from signcheck.clients.workloads import WORKLOAD_LABEL
from signcheck.wait import until

REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
KEPT_ANNOTATIONS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)
"""kubectl's `annotationsToSkip`: kept from the Deployment, never copied from the old
ReplicaSet, on a rollback."""
ERROR_PREFIX = "Error creating: "
"""How the ReplicaSet controller's FailedCreate event starts (its condition does not)."""


def _apps(cluster: Cluster) -> Any:
    return client.AppsV1Api(cluster.api)


def _admission(call: Callable[[], Any], cluster: Cluster, image: str | None) -> Admission:
    """The API's answer as Admitted (the object as stored) or a parsed Denied."""
    try:
        obj = call()
    except ApiException as err:
        message, code = status_message(err.body, str(err))
        if err.status in (400, 403, 422, 500) or "admission webhook" in message:
            return parse_denial(message, code or err.status, image)
        raise
    return Admitted(cluster.api.sanitize_for_serialization(obj))


def deployment(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    dep = _apps(cluster).read_namespaced_deployment(name, namespace)
    found: dict[str, Any] = cluster.api.sanitize_for_serialization(dep)
    return found


def scale(cluster: Cluster, namespace: str, name: str, replicas: int) -> Admission:
    """`kubectl scale deployment/<name> --replicas=<n>`."""
    body = {"spec": {"replicas": replicas}}
    return _admission(
        lambda: _apps(cluster).patch_namespaced_deployment_scale(name, namespace, body),
        cluster,
        None,
    )


def set_image(cluster: Cluster, namespace: str, name: str, container: str, image: str) -> Admission:
    """`kubectl set image deployment/<name> <container>=<image>`."""
    body = {"spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}}
    return _admission(
        lambda: _apps(cluster).patch_namespaced_deployment(name, namespace, body), cluster, image
    )


def revisions(cluster: Cluster, namespace: str, name: str) -> dict[int, dict[str, Any]]:
    """The Deployment's ReplicaSets by revision (what `kubectl rollout history` lists)."""
    uid = deployment(cluster, namespace, name)["metadata"]["uid"]
    found: dict[int, dict[str, Any]] = {}
    for rs in _apps(cluster).list_namespaced_replica_set(namespace).items:
        owners = rs.metadata.owner_references or []
        revision = (rs.metadata.annotations or {}).get(REVISION)
        if revision and any(o.uid == uid for o in owners):
            found[int(revision)] = cluster.api.sanitize_for_serialization(rs)
    return found


def wait_revision(
    cluster: Cluster, namespace: str, name: str, revision: int, timeout: float
) -> dict[int, dict[str, Any]]:
    """Every revision up to `revision` has its ReplicaSet (the deployment controller makes
    them after the update is stored)."""
    last: list[dict[int, dict[str, Any]]] = [{}]

    def probe() -> dict[int, dict[str, Any]] | None:
        last[0] = revisions(cluster, namespace, name)
        return last[0] if revision in last[0] else None

    return until(
        probe,
        what=f"revision {revision} of Deployment {namespace}/{name}",
        timeout=timeout,
        interval=0.05,
        backoff=1.5,
        max_interval=0.5,
        describe=lambda: f"revisions {sorted(last[0])}",
    )


def undo(
    cluster: Cluster, namespace: str, name: str, to_revision: int = 0, image: str | None = None
) -> Admission:
    """`kubectl rollout undo deployment/<name> [--to-revision=N]` (0: the previous one)."""
    current = deployment(cluster, namespace, name)
    found = revisions(cluster, namespace, name)
    if to_revision == 0:
        # kubectl: the second-newest ReplicaSet (`deploymentRevision`).
        to_revision = sorted(found)[-2] if len(found) > 1 else 0
    if to_revision not in found:
        raise ValueError(f"Deployment {namespace}/{name} has no revision {to_revision}")
    old = found[to_revision]
    template = old["spec"]["template"]
    (template.get("metadata") or {}).get("labels", {}).pop(HASH_LABEL, None)
    annotations = {
        k: v
        for k, v in (current["metadata"].get("annotations") or {}).items()
        if k in KEPT_ANNOTATIONS
    }
    annotations |= {
        k: v
        for k, v in (old["metadata"].get("annotations") or {}).items()
        if k not in KEPT_ANNOTATIONS
    }
    patch = [
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]
    # A list body goes as application/json-patch+json, as kubectl sends it.
    return _admission(
        lambda: _apps(cluster).patch_namespaced_deployment(name, namespace, patch),
        cluster,
        image,
    )


def pods_of(cluster: Cluster, namespace: str, workload: str) -> list[dict[str, Any]]:
    """The pods of a workload made by `workloads.manifest` (those not being deleted)."""
    pods = cluster.pods(namespace, label_selector=f"{WORKLOAD_LABEL}={workload}")
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def replica_set(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """The Deployment's current ReplicaSet (its highest revision)."""
    found = revisions(cluster, namespace, name)
    if not found:
        raise AssertionError(f"Deployment {namespace}/{name} has no ReplicaSet")
    return found[max(found)]


def failed_create(rs: dict[str, Any]) -> str | None:
    """The message of the ReplicaSet's `ReplicaFailure`/`FailedCreate` condition, if any."""
    for cond in (rs.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("reason") == "FailedCreate":
            return str(cond.get("message") or "")
    return None


def wait_failed_create(
    cluster: Cluster, namespace: str, name: str, timeout: float, image: str | None = None
) -> tuple[dict[str, Any], Denied]:
    """The current ReplicaSet of Deployment `name` once its controller recorded a refused
    pod: the ReplicaSet and the refusal, parsed like any denial."""
    last: list[dict[str, Any]] = [{}]

    def probe() -> dict[str, Any] | None:
        last[0] = replica_set(cluster, namespace, name)
        return last[0] if failed_create(last[0]) is not None else None

    rs = until(
        probe,
        what=f"the ReplicaSet of {namespace}/{name} to record a refused pod (FailedCreate)",
        timeout=timeout,
        interval=0.1,
        backoff=1.5,
        max_interval=1.0,
        describe=lambda: str(last[0].get("status") or {})[:1500],
    )
    return rs, parse_denial(failed_create(rs) or "", 400, image)


def failed_create_events(cluster: Cluster, namespace: str, rs_name: str) -> list[Denied]:
    """The ReplicaSet's `FailedCreate` events, each parsed like a denial."""
    selector = f"involvedObject.name={rs_name},reason=FailedCreate"
    events = cluster.core.list_namespaced_event(namespace, field_selector=selector).items
    return [
        parse_denial(str(e.message or "").removeprefix(ERROR_PREFIX), 400)
        for e in events
        if (e.involved_object.kind or "") == "ReplicaSet"
    ]


def wait_replicas(
    cluster: Cluster, namespace: str, name: str, replicas: int, timeout: float
) -> list[dict[str, Any]]:
    """The workload's pods once exactly `replicas` of them are left (or made)."""
    last: list[list[dict[str, Any]]] = [[]]

    def probe() -> list[dict[str, Any]] | None:
        last[0] = pods_of(cluster, namespace, name)
        return last[0] if len(last[0]) == replicas else None

    return until(
        probe,
        what=f"{replicas} pod(s) of {namespace}/{name}",
        timeout=timeout,
        interval=0.1,
        backoff=1.5,
        max_interval=1.0,
        describe=lambda: str([p["metadata"]["name"] for p in last[0]]),
    )

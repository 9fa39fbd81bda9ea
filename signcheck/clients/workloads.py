"""Pod controllers for the workload scenarios: manifests for Deployment, StatefulSet,
DaemonSet, Job and CronJob around the suite's minimal pod, a Job started from a CronJob (what
`kubectl create job --from=cronjob/<name>` does), and a wait for the pods a controller made.

Kyverno turns a Pod rule into rules for these kinds ("autogen"), so a workload with an
unsigned image is refused at admission, before any pod exists; a signed one is admitted with
its template pinned to the digest, and its pods pass admission again when the controller
creates them.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from signcheck.clients import k8s
from signcheck.clients.k8s import Cluster
from signcheck.target import RUN_LABEL
from signcheck.wait import until

KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
WORKLOAD_LABEL = "signcheck.io/workload"

_API = {
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
}


def _template(name: str, image: str, run_id: str, restart: str | None) -> dict[str, Any]:
    pod = k8s.pod(name, "unused", image, run_id, **{WORKLOAD_LABEL: name})
    spec = pod["spec"]
    if restart:
        spec["restartPolicy"] = restart
    return {"metadata": {"labels": pod["metadata"]["labels"]}, "spec": spec}


def manifest(kind: str, name: str, namespace: str, image: str, run_id: str) -> dict[str, Any]:
    """One replica of the suite's minimal pod, run by `kind`."""
    if kind not in _API:
        raise ValueError(f"not a pod controller the suite knows: {kind}")
    batch = kind in ("Job", "CronJob")
    template = _template(name, image, run_id, "Never" if batch else None)
    selector = {"matchLabels": {WORKLOAD_LABEL: name}}
    spec: dict[str, Any]
    if kind == "Deployment":
        spec = {"replicas": 1, "selector": selector, "template": template}
    elif kind == "StatefulSet":
        spec = {"replicas": 1, "selector": selector, "serviceName": name, "template": template}
    elif kind == "DaemonSet":
        spec = {"selector": selector, "template": template}
    elif kind == "Job":
        spec = {"backoffLimit": 0, "template": template}
    else:
        # Never fires on its own (1 January, midnight): the test starts a Job from it.
        spec = {
            "schedule": "0 0 1 1 *",
            "jobTemplate": {"spec": {"backoffLimit": 0, "template": template}},
        }
    return {
        "apiVersion": _API[kind],
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": {RUN_LABEL: run_id}},
        "spec": spec,
    }


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod spec inside a workload (or a pod's own spec)."""
    spec = obj.get("spec", {})
    if "jobTemplate" in spec:
        spec = spec["jobTemplate"]["spec"]
    result: dict[str, Any] = spec.get("template", {}).get("spec", spec)
    return result


def job_from_cronjob(cronjob: dict[str, Any], name: str) -> dict[str, Any]:
    """A Job from a CronJob's (admitted, so pinned) template, owned by the CronJob."""
    meta = cronjob["metadata"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": dict(meta.get("labels") or {}),
            "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": meta["name"],
                    "uid": meta["uid"],
                }
            ],
        },
        "spec": copy.deepcopy(cronjob["spec"]["jobTemplate"]["spec"]),
    }


def wait_pods(
    cluster: Cluster, namespace: str, workload: str, timeout: float, phase: str | None = None
) -> list[dict[str, Any]]:
    """The pods a controller created for `workload` (at least one; all in `phase` if set)."""
    last: list[dict[str, Any]] = []

    def probe() -> list[dict[str, Any]] | None:
        nonlocal last
        last = cluster.pods(namespace, label_selector=f"{WORKLOAD_LABEL}={workload}")
        if not last:
            return None
        if phase and any(p.get("status", {}).get("phase") != phase for p in last):
            return None
        return last

    def describe() -> str:
        seen = [(p["metadata"]["name"], p.get("status", {}).get("phase")) for p in last]
        events = cluster.events(namespace)[-10:]
        return json.dumps({"pods": seen, "events": events})[:2000]

    return until(
        probe,
        what=f"pods of {workload} in {namespace}" + (f" to be {phase}" if phase else ""),
        timeout=timeout,
        interval=0.1,
        backoff=1.5,
        max_interval=1.0,
        describe=describe,
    )

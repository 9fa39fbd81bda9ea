"""Kyverno policies for the suite: render the seed's `ClusterPolicy` (and, later, its
`ImageValidatingPolicy` twin), apply it, wait until Kyverno reports it Ready, delete it.

By default the policy is scoped to the run: its rule matches only namespaces labelled with
the run id, so a run on a shared cluster never blocks anybody else's pods. `seed_exact=True`
renders the tutorial's cluster-wide policy unchanged (plus the offline tlog/SCT switches).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from kubernetes.client.exceptions import ApiException

from signcheck.errors import EnvironmentNotReady
from signcheck.k8s import Cluster
from signcheck.target import RUN_LABEL
from signcheck.wait import until

GROUP, VERSION, PLURAL = "kyverno.io", "v1", "clusterpolicies"

Action = Literal["enforce", "Enforce", "audit", "Audit"]


@dataclass(frozen=True)
class PolicySpec:
    """Everything that varies between the policies a run applies."""

    run_id: str
    image_references: tuple[str, ...]
    public_keys: tuple[str, ...]
    """PEM public keys; one attestor entry each, `count: 1` admits any of them."""
    name: str = "check-image"
    rule: str = "check-image"
    action: Action = "enforce"
    """The seed writes `enforce`; Kyverno accepts either case."""
    background: bool = False
    webhook_timeout_seconds: int = 30
    failure_policy: Literal["Fail", "Ignore"] = "Fail"
    offline: bool = True
    """Skip the public transparency log and SCT checks (keys signed with --tlog-upload=false)."""
    seed_exact: bool = False
    """The seed's cluster-wide match instead of the run's namespaces only."""
    skip_image_references: tuple[str, ...] = ()
    mutate_digest: bool = True
    """Kyverno refuses `mutateDigest: true` (its default) on an Audit policy."""
    extra_labels: dict[str, str] = field(default_factory=dict)


def _keys_entry(pem: str, offline: bool) -> dict[str, Any]:
    keys: dict[str, Any] = {"publicKeys": pem.strip()}
    if offline:
        keys["rekor"] = {"ignoreTlog": True}
        keys["ctlog"] = {"ignoreSCT": True}
    return {"keys": keys}


def render_cluster_policy(spec: PolicySpec) -> dict[str, Any]:
    """The seed's ClusterPolicy `check-image`, filled in for this run."""
    resources: dict[str, Any] = {"kinds": ["Pod"]}
    if not spec.seed_exact:
        resources["namespaceSelector"] = {"matchLabels": {RUN_LABEL: spec.run_id}}
    verify: dict[str, Any] = {
        "imageReferences": list(spec.image_references),
        "attestors": [
            {"count": 1, "entries": [_keys_entry(k, spec.offline) for k in spec.public_keys]}
        ],
    }
    if not spec.mutate_digest:
        verify["mutateDigest"] = False
    if spec.skip_image_references:
        verify["skipImageReferences"] = list(spec.skip_image_references)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ClusterPolicy",
        "metadata": {
            "name": spec.name,
            "labels": {RUN_LABEL: spec.run_id, **spec.extra_labels},
        },
        "spec": {
            "validationFailureAction": spec.action,
            "background": spec.background,
            "webhookTimeoutSeconds": spec.webhook_timeout_seconds,
            "failurePolicy": spec.failure_policy,
            "rules": [
                {
                    "name": spec.rule,
                    "match": {"any": [{"resources": resources}]},
                    "verifyImages": [verify],
                }
            ],
        },
    }


def ready_condition(policy: dict[str, Any]) -> dict[str, Any] | None:
    for cond in policy.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == "Ready":
            return dict(cond)
    return None


def is_ready(policy: dict[str, Any]) -> bool:
    cond = ready_condition(policy)
    return bool(cond and cond.get("status") == "True")


class Policies:
    """ClusterPolicies through the API server."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            obj = cast(
                dict[str, Any],
                self.cluster.custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, name),
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return obj

    def apply(self, policy: dict[str, Any]) -> dict[str, Any]:
        """Create, or replace what is there (keeping nothing of the old spec)."""
        name = policy["metadata"]["name"]
        try:
            created = cast(
                dict[str, Any],
                self.cluster.custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, policy),
            )
            return created
        except ApiException as err:
            if err.status == 404:
                raise EnvironmentNotReady(
                    "Kyverno is not installed: the API server does not know ClusterPolicy "
                    "(kyverno.io/v1)"
                ) from err
            if err.status != 409:
                raise EnvironmentNotReady(
                    f"the cluster rejected ClusterPolicy {name}", _api_message(err)
                ) from err
        current = self.get(name) or {}
        body = copy.deepcopy(policy)
        body["metadata"]["resourceVersion"] = current.get("metadata", {}).get("resourceVersion")
        replaced = cast(
            dict[str, Any],
            self.cluster.custom.replace_cluster_custom_object(GROUP, VERSION, PLURAL, name, body),
        )
        return replaced

    def wait_ready(self, name: str, timeout: float) -> dict[str, Any]:
        """Wait until Kyverno reports the policy Ready (its webhooks are configured for it)."""
        last: dict[str, Any] = {}

        def probe() -> dict[str, Any] | None:
            nonlocal last
            last = self.get(name) or {}
            # A Ready condition from before the last spec change is stale.
            generation = last.get("metadata", {}).get("generation")
            observed = (ready_condition(last) or {}).get("observedGeneration", generation)
            return last if is_ready(last) and observed == generation else None

        return until(
            probe,
            what=f"ClusterPolicy {name} to become Ready",
            timeout=timeout,
            interval=0.5,
            describe=lambda: json.dumps(last.get("status", "no status yet"), default=str),
        )

    def delete(self, name: str) -> bool:
        try:
            self.cluster.custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return True

    def run_policies(self, run_id: str) -> list[str]:
        try:
            listed = cast(
                dict[str, Any],
                self.cluster.custom.list_cluster_custom_object(
                    GROUP, VERSION, PLURAL, label_selector=f"{RUN_LABEL}={run_id}"
                ),
            )
            items = listed["items"]
        except ApiException as err:
            if err.status == 404:
                return []
            raise
        return sorted(i["metadata"]["name"] for i in items)


def _api_message(err: ApiException) -> str:
    try:
        return str(json.loads(err.body or "{}").get("message", err.body))
    except ValueError:
        return str(err.body)

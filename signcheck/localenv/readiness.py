"""What "Ready" means beyond a process answering its health check.

Each function is a probe for `wait_for` (raises `NotYet` with what it saw) or a wait
built from one: fake Nodes Ready and untainted, a leader lease held, Kyverno's webhook
configurations registered and answering over TLS as the apiserver will call them, and a
canary ClusterPolicy admitted and turned Ready.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from kubernetes.client.exceptions import ApiException

from signcheck.localenv import kubeapi as kubelib
from signcheck.localenv.probes import http_probe, ssl_context
from signcheck.wait import NotYet, wait_for

#: Webhook configurations Kyverno registers at start, before any policy exists.
EXPECTED_WEBHOOKS = (
    "kyverno-policy-validating-webhook-cfg",
    "kyverno-policy-mutating-webhook-cfg",
    "kyverno-resource-validating-webhook-cfg",
    "kyverno-resource-mutating-webhook-cfg",
)
POLICIES = ("kyverno.io", "v1", "clusterpolicies")

Probe = Callable[[], bool]


def nodes_ready(kube: kubelib.Kube, nodes: Sequence[str]) -> Probe:
    def probe() -> bool:
        _, waiting = kubelib.ready_nodes(kube, nodes)
        if waiting:
            raise NotYet(f"nodes not Ready yet: {', '.join(waiting)}")
        return True

    return probe


def lease_held(kube: kubelib.Kube, namespace: str, lease: str) -> Probe:
    def probe() -> bool:
        try:
            got = kube.coordination.read_namespaced_lease(lease, namespace)
        except ApiException as err:
            raise NotYet(f"lease {namespace}/{lease}: {err.status} {err.reason}") from None
        if not (got.spec and got.spec.holder_identity):
            raise NotYet(f"lease {namespace}/{lease} has no holder")
        return True

    return probe


def webhooks_answering(kube: kubelib.Kube, server: str, ca_file: Path) -> Probe:
    def probe() -> bool:
        found = kubelib.kyverno_webhooks(kube)
        names = {name for _, name, _ in found}
        missing = [n for n in EXPECTED_WEBHOOKS if n not in names]
        if missing:
            raise NotYet(f"missing: {', '.join(missing)}; registered: {sorted(names)}")
        foreign = [u for _, _, urls in found for u in urls if server not in u]
        if foreign:
            raise NotYet(f"webhooks not pointing at {server}: {foreign[:3]}")
        # Answering, as the apiserver will see it: TLS verified against the caBundle the
        # configurations carry, for the IP their URLs name.
        bundle = kubelib.webhook_ca_bundle(kube, EXPECTED_WEBHOOKS[0])
        if not bundle:
            raise NotYet(f"{EXPECTED_WEBHOOKS[0]} has no caBundle yet")
        ca_file.write_bytes(bundle)
        http_probe(f"https://{server}/health/readiness", context=ssl_context(ca_file))()
        return True

    return probe


def canary_policy(name: str) -> dict[str, Any]:
    """An Audit policy on a ConfigMap name nobody uses: cheap, and it exercises the webhook
    that validates policies (failurePolicy Fail) and the controller that marks them Ready."""
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": name, "labels": {"signcheck.io/canary": "true"}},
        "spec": {
            "background": False,
            "rules": [
                {
                    "name": "canary",
                    "match": {"any": [{"resources": {"kinds": ["ConfigMap"], "names": [name]}}]},
                    "validate": {
                        "failureAction": "Audit",
                        "message": "signcheck canary",
                        "pattern": {"metadata": {"labels": {"signcheck.io/canary": "?*"}}},
                    },
                }
            ],
        },
    }


def policy_ready(kube: kubelib.Kube, name: str) -> Probe:
    def probe() -> bool:
        got = cast("dict[str, Any]", kube.custom.get_cluster_custom_object(*POLICIES, name))
        conds = (got.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
            raise NotYet(f"ClusterPolicy {name} conditions: {conds}")
        return True

    return probe


def canary(kube: kubelib.Kube, timeout: Callable[[], float], interval: float) -> None:
    """Create a canary ClusterPolicy, wait for Ready, delete it. `timeout()` is asked
    before each wait, so the caller's overall boot deadline still applies."""
    # Not derived from the run id: a caller may choose ids that are no valid object name.
    name = f"signcheck-canary-{secrets.token_hex(3)}"

    def create() -> bool:
        try:
            kube.custom.create_cluster_custom_object(*POLICIES, canary_policy(name))
        except ApiException as err:
            if err.status == 409:
                return True
            # The policy webhook refuses calls until Kyverno's server has its cert.
            raise NotYet(f"create ClusterPolicy {name}: {err.status} {err.body}") from None
        return True

    wait_for(
        f"ClusterPolicy {name} to be admitted",
        create,
        where="the apiserver's policy webhook",
        timeout=timeout(),
        interval=interval,
    )
    wait_for(
        f"ClusterPolicy {name} to be Ready",
        policy_ready(kube, name),
        where="its status",
        timeout=timeout(),
        interval=interval,
    )
    kube.custom.delete_cluster_custom_object(*POLICIES, name)

"""The few Kubernetes API calls the environment makes, through the official client.

Big objects (Kyverno's CRDs are megabytes of OpenAPI schema) go through `raw()`: the typed
client would turn every response into nested models, which costs seconds for nothing.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from signcheck.localenv.ports import is_listening

FIELD_MANAGER = "signcheck"
KYVERNO_WEBHOOK_SELECTOR = "webhook.kyverno.io/managed-by=kyverno"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"

# kind -> (plural, namespaced) for the objects the environment itself applies.
_RESOURCES: dict[str, tuple[str, bool]] = {
    "Namespace": ("namespaces", False),
    "ConfigMap": ("configmaps", True),
    "Secret": ("secrets", True),
    "Node": ("nodes", False),
    "CustomResourceDefinition": ("customresourcedefinitions", False),
    "ClusterPolicy": ("clusterpolicies", False),
    "ClusterRoleBinding": ("clusterrolebindings", False),
}


def object_path(obj: Mapping[str, Any]) -> str:
    kind = obj["kind"]
    plural, namespaced = _RESOURCES[kind]
    api_version = obj["apiVersion"]
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    meta = obj["metadata"]
    ns = f"/namespaces/{meta['namespace']}" if namespaced else ""
    return f"{base}{ns}/{plural}/{meta['name']}"


class Kube:
    """`Kube(kubeconfig)`: typed APIs as attributes, plus raw and server-side-apply helpers."""

    def __init__(self, kubeconfig: Path, timeout: float = 15.0) -> None:
        self.kubeconfig = kubeconfig
        self.timeout = timeout
        load = config.new_client_from_config
        self.api = load(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        self.core = client.CoreV1Api(self.api)
        self.admission = client.AdmissionregistrationV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.coordination = client.CoordinationV1Api(self.api)

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> Kube:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def raw(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        query: Mapping[str, str] | None = None,
    ) -> Any:
        """One request; returns the decoded JSON body, raises ApiException on a non-2xx."""
        headers = {"Accept": "application/json", "Content-Type": content_type}
        method_, url, headers_, body_, post = self.api.param_serialize(
            method,
            path,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        resp = self.api.call_api(method_, url, headers_, body_, post, _request_timeout=self.timeout)
        data = resp.read()
        if not 200 <= resp.status <= 299:
            raise ApiException(http_resp=resp)
        return json.loads(data) if data else None

    def apply(self, obj: Mapping[str, Any]) -> None:
        """Server-side apply, forcing ownership: the environment is the only writer."""
        self.raw(
            "PATCH",
            object_path(obj),
            dict(obj),
            content_type="application/apply-patch+yaml",
            query={"fieldManager": FIELD_MANAGER, "force": "true"},
        )

    def delete(self, obj: Mapping[str, Any]) -> None:
        """Delete; an object already gone counts as deleted."""
        try:
            self.raw("DELETE", object_path(obj))
        except ApiException as err:
            if err.status != 404:
                raise


def fake_node(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/agent": "",
            },
        },
        "spec": {},
    }


def ready_nodes(kube: Kube, names: Iterable[str]) -> tuple[list[str], list[str]]:
    """(ready, not ready) among `names`: Ready and free of the node-condition taints."""
    ready: list[str] = []
    waiting: list[str] = []
    for name in names:
        try:
            node = kube.core.read_node(name)
        except ApiException:
            waiting.append(name)
            continue
        conds = {c.type: c.status for c in (node.status and node.status.conditions) or []}
        # The not-ready taint outlives the Ready condition by a moment; pods wait for both.
        taints = [
            t.key
            for t in (node.spec and node.spec.taints) or []
            if t.key.startswith("node.kubernetes.io/")
        ]
        (ready if conds.get("Ready") == "True" and not taints else waiting).append(name)
    return ready, waiting


def _webhook_kinds(kube: Kube) -> Iterator[tuple[str, Any, Any]]:
    """(kind, list call, delete call) for both kinds of webhook configuration."""
    yield (
        "MutatingWebhookConfiguration",
        kube.admission.list_mutating_webhook_configuration,
        kube.admission.delete_mutating_webhook_configuration,
    )
    yield (
        "ValidatingWebhookConfiguration",
        kube.admission.list_validating_webhook_configuration,
        kube.admission.delete_validating_webhook_configuration,
    )


def kyverno_webhooks(kube: Kube) -> list[tuple[str, str, list[str]]]:
    """(kind, name, URLs) of every webhook configuration Kyverno manages."""
    found = []
    for kind, list_call, _ in _webhook_kinds(kube):
        for item in list_call(label_selector=KYVERNO_WEBHOOK_SELECTOR).items:
            urls = [w.client_config.url or "" for w in item.webhooks or []]
            found.append((kind, item.metadata.name, urls))
    return found


def webhook_ca_bundle(kube: Kube, name: str) -> bytes | None:
    """The PEM CA bundle the apiserver trusts for one validating webhook configuration."""
    got = kube.admission.read_validating_webhook_configuration(name)
    for hook in got.webhooks or []:
        if hook.client_config.ca_bundle:
            return base64.b64decode(hook.client_config.ca_bundle)
    return None


def dead_endpoint(url: str) -> bool:
    """A webhook URL on loopback whose port nobody listens on: it would fail every call."""
    parsed = urlparse(url)
    if parsed.hostname not in ("127.0.0.1", "localhost") or parsed.port is None:
        return False
    return not is_listening(parsed.port)


def delete_kyverno_webhooks(kube: Kube, only_dead: bool = False) -> list[str]:
    """Delete Kyverno's webhook configurations (Kyverno never does); returns what went."""
    deleted = []
    for kind, list_call, delete_call in _webhook_kinds(kube):
        for item in list_call(label_selector=KYVERNO_WEBHOOK_SELECTOR).items:
            urls = [w.client_config.url for w in item.webhooks or [] if w.client_config.url]
            if only_dead and not (urls and all(dead_endpoint(u) for u in urls)):
                continue
            with contextlib.suppress(ApiException):
                delete_call(item.metadata.name)
                deleted.append(f"{kind}/{item.metadata.name}")
    return deleted

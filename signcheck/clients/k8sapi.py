"""The API server's answers as signcheck errors, and any object as a plain dict.

`ApiError` (the status and the server's own message) is the only exception callers of
`signcheck.clients` see from the API; `ObjectsApi` gives `k8s.Cluster` its generic calls
(custom objects, webhook configurations, deployments, pods, access reviews), so no module
outside `clients/` imports the client library or catches its exceptions.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from signcheck.errors import SigncheckError


def status_message(body: str | bytes | None, fallback: str) -> tuple[str, int | None]:
    try:
        status = json.loads(body or "")
    except (TypeError, ValueError):
        return fallback, None
    if isinstance(status, dict):
        return str(status.get("message", fallback)), status.get("code")
    return fallback, None


def api_message(err: ApiException) -> str:
    """The API server's own sentence for a failed call (the Status `message`), else its
    reason: what a user reads, without the HTTP headers the exception's str() carries."""
    fallback = str(err.body or err.reason or f"HTTP {err.status}")
    message, _ = status_message(err.body, fallback)
    return message or fallback


class ApiError(SigncheckError):
    """The API server refused a request: the HTTP status, and the server's own message."""

    def __init__(self, what: str, status: int | None, message: str) -> None:
        super().__init__(f"the API server refused {what}: {message}")
        self.status = status
        self.server_message = message


@contextlib.contextmanager
def _api_errors(what: str) -> Iterator[None]:
    # The one place the client library's exception becomes a signcheck error.
    try:
        yield
    except ApiException as err:
        raise ApiError(what, err.status, api_message(err)) from err


def service_namespaces(webhook_configuration: dict[str, Any]) -> list[str | None]:
    """Per webhook of a configuration: the namespace of the Service it calls (None: a URL)."""
    return [
        ((w.get("clientConfig") or {}).get("service") or {}).get("namespace")
        for w in webhook_configuration.get("webhooks") or []
    ]


class ObjectsApi:
    """Generic calls of `k8s.Cluster`, answering plain dicts (the API's own JSON shape)."""

    api: Any
    core: Any
    custom: Any
    admreg: Any

    @property
    def server(self) -> str:
        return str(self.api.configuration.host)

    def list_objects(
        self,
        group: str,
        version: str,
        plural: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Custom objects; `MissingApi` when the cluster does not serve the kind (no CRD)."""
        extra: dict[str, Any] = {"label_selector": label_selector} if label_selector else {}
        if limit:
            extra["limit"] = limit
        with _api_errors(f"{plural}.{group}"):
            if namespace is None:
                listed = self.custom.list_cluster_custom_object(group, version, plural, **extra)
            else:
                listed = self.custom.list_namespaced_custom_object(
                    group, version, namespace, plural, **extra
                )
        return list(listed.get("items", []))

    def get_object(self, group: str, version: str, plural: str, name: str) -> dict[str, Any] | None:
        """A cluster-scoped custom object, or None."""
        try:
            with _api_errors(f"{plural}.{group}"):
                found: dict[str, Any] = self.custom.get_cluster_custom_object(
                    group, version, plural, name
                )
        except ApiError as err:
            if err.status == 404:
                return None
            raise
        return found

    def create_object(
        self, group: str, version: str, plural: str, body: dict[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        extra = {"dry_run": "All"} if dry_run else {}
        with _api_errors(f"{plural}.{group}"):
            made: dict[str, Any] = self.custom.create_cluster_custom_object(
                group, version, plural, body, **extra
            )
        return made

    def replace_object(
        self, group: str, version: str, plural: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        with _api_errors(f"{plural}.{group}"):
            done: dict[str, Any] = self.custom.replace_cluster_custom_object(
                group, version, plural, name, body
            )
        return done

    def delete_object(self, group: str, version: str, plural: str, name: str) -> bool:
        """Delete a cluster-scoped custom object; False if it was not there."""
        try:
            with _api_errors(f"{plural}.{group}"):
                self.custom.delete_cluster_custom_object(group, version, plural, name)
        except ApiError as err:
            if err.status == 404:
                return False
            raise
        return True

    def dry_run_pod(self, namespace: str, body: dict[str, Any], timeout: float = 40) -> None:
        """Ask admission about a pod without creating it; `ApiError` carries the refusal."""
        with _api_errors("pods"):
            self.core.create_namespaced_pod(
                namespace, body, dry_run="All", _request_timeout=timeout
            )

    def webhook_configurations(self, label_selector: str) -> list[dict[str, Any]]:
        """Mutating and validating webhook configurations, each with its `kind`."""
        out = []
        with _api_errors("webhook configurations"):
            for kind, lister in (
                ("MutatingWebhookConfiguration", self.admreg.list_mutating_webhook_configuration),
                (
                    "ValidatingWebhookConfiguration",
                    self.admreg.list_validating_webhook_configuration,
                ),
            ):
                for cfg in lister(label_selector=label_selector).items:
                    out.append({**self.api.sanitize_for_serialization(cfg), "kind": kind})
        return out

    def delete_webhook_configuration(self, kind: str, name: str) -> bool:
        call = (
            self.admreg.delete_mutating_webhook_configuration
            if kind == "MutatingWebhookConfiguration"
            else self.admreg.delete_validating_webhook_configuration
        )
        try:
            with _api_errors(f"{kind} {name}"):
                call(name)
        except ApiError as err:
            if err.status == 404:
                return False
            raise
        return True

    def deployments(
        self, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """The namespace's Deployments ([] when they cannot be listed: not ours to judge)."""
        extra = {"label_selector": label_selector} if label_selector else {}
        try:
            apps: Any = client.AppsV1Api(self.api)
            items = apps.list_namespaced_deployment(namespace, **extra).items
        except ApiException:
            return []
        return [self.api.sanitize_for_serialization(d) for d in items]

    def pods(self, namespace: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        extra = {"label_selector": label_selector} if label_selector else {}
        with _api_errors(f"pods in {namespace}"):
            items = self.core.list_namespaced_pod(namespace, **extra).items
        return [self.api.sanitize_for_serialization(p) for p in items]

    def pod_log(self, namespace: str, name: str, *, since_seconds: int, tail_lines: int) -> str:
        with _api_errors(f"the log of pod {namespace}/{name}"):
            text = self.core.read_namespaced_pod_log(
                name, namespace, since_seconds=since_seconds, tail_lines=tail_lines
            )
        return str(text or "")

    def can_i(self, verb: str, group: str, resource: str) -> bool:
        """A SelfSubjectAccessReview: may this kubeconfig's identity do it cluster-wide?
        `resource` may name a subresource (`pods/log`)."""
        name, _, sub = resource.partition("/")
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    verb=verb, group=group, resource=name, subresource=sub or None
                )
            )
        )
        with _api_errors("a SelfSubjectAccessReview"):
            status = (
                client.AuthorizationV1Api(self.api).create_self_subject_access_review(review).status
            )
        return bool(status and status.allowed)

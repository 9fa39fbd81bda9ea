"""The cluster as the suite sees it: create an object and get back what admission said
(`signcheck.clients.admission`); namespaces owned by a run; the evidence a failing test needs
(events, pod status). The one place that talks to the Kubernetes client library.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config, dynamic
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError

from signcheck.clients.admission import Admission, Admitted, parse_denial
from signcheck.clients.k8sapi import ObjectsApi, status_message
from signcheck.errors import EnvironmentNotReady
from signcheck.target import OUTSIDE_LABEL, RUN_LABEL
from signcheck.wait import until


def pod(name: str, namespace: str, image: str, run_id: str, **labels: str) -> dict[str, Any]:
    """A minimal pod for one image; tolerates kwok's fake nodes, stops at once."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {RUN_LABEL: run_id, **labels},
        },
        "spec": {
            "containers": [{"name": "app", "image": image}],
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": False,
            "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists"}],
        },
    }


class Cluster(ObjectsApi):
    """One API server, reached through a kubeconfig (and optionally a context)."""

    def __init__(self, kubeconfig: Path, context: str | None = None) -> None:
        if not kubeconfig.is_file():
            raise EnvironmentNotReady(f"kubeconfig {kubeconfig} does not exist")
        self.kubeconfig = kubeconfig
        self.context = context
        try:
            self.api = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig), context=context, persist_config=False
            )
        except config.ConfigException as err:
            raise EnvironmentNotReady(
                f"cannot use kubeconfig {kubeconfig}"
                + (f" with context {context!r}" if context else ""),
                str(err),
            ) from err
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.admreg = client.AdmissionregistrationV1Api(self.api)
        self._dynamic: dynamic.DynamicClient | None = None

    @property
    def dynamic(self) -> dynamic.DynamicClient:
        if self._dynamic is None:
            self._dynamic = dynamic.DynamicClient(self.api)  # type: ignore[no-untyped-call]
        return self._dynamic

    def ping(self) -> str:
        """The server's version; one clear error when it cannot be reached."""
        try:
            info = client.VersionApi(self.api).get_code(_request_timeout=10)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as err:
            raise EnvironmentNotReady(
                f"the Kubernetes API server in {self.kubeconfig} is unreachable", str(err)
            ) from err
        return str(info.git_version)

    def _resource(self, obj: dict[str, Any]) -> Any:
        return self.dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])

    # -- admission --------------------------------------------------------------------

    def create(
        self, obj: dict[str, Any], image: str | None = None, dry_run: bool = False
    ) -> Admission:
        """Create `obj`; a refusal comes back as a parsed `Denied`, never as an exception.
        `dry_run` sends it through admission without storing it."""
        namespace = obj.get("metadata", {}).get("namespace")
        extra = {"dry_run": "All"} if dry_run else {}
        try:
            created = self._resource(obj).create(body=obj, namespace=namespace, **extra)
        except DynamicApiError as err:
            message, code = status_message(err.body, str(err))
            if err.status in (400, 403, 422, 500) or "admission webhook" in message:
                return parse_denial(message, code or err.status, image)
            raise
        return Admitted(created.to_dict())

    def patch_pod(
        self,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        *,
        subresource: str | None = None,
        image: str | None = None,
    ) -> Admission:
        """Strategic-merge patch a pod (or its `ephemeralcontainers` subresource, which is
        how `kubectl debug` adds a container); a refusal comes back as `Denied`."""
        try:
            if subresource == "ephemeralcontainers":
                pod = self.core.patch_namespaced_pod_ephemeralcontainers(name, namespace, patch)
            elif subresource is None:
                pod = self.core.patch_namespaced_pod(name, namespace, patch)
            else:
                raise ValueError(f"unsupported pod subresource {subresource!r}")
        except ApiException as err:
            message, code = status_message(err.body, str(err))
            if err.status in (400, 403, 422, 500) or "admission webhook" in message:
                return parse_denial(message, code or err.status, image)
            raise
        return Admitted(self.api.sanitize_for_serialization(pod))

    def namespaced(self, obj: dict[str, Any]) -> bool:
        """Whether `obj`'s kind lives in namespaces (a manifest may leave the namespace out)."""
        return bool(self._resource(obj).namespaced)

    def get(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        meta = obj["metadata"]
        try:
            found = self._resource(obj).get(name=meta["name"], namespace=meta.get("namespace"))
        except NotFoundError:
            return None
        result: dict[str, Any] = found.to_dict()
        return result

    def delete(self, obj: dict[str, Any]) -> bool:
        """Delete; NotFound is success (returns False)."""
        meta = obj["metadata"]
        try:
            self._resource(obj).delete(name=meta["name"], namespace=meta.get("namespace"))
        except NotFoundError:
            return False
        return True

    # -- namespaces -------------------------------------------------------------------

    def create_namespace(
        self,
        name: str,
        run_id: str,
        *,
        outside: bool = False,
        labels: dict[str, str] | None = None,
    ) -> bool:
        """A namespace of the run (labelled with the run id, so the run's policies apply), or
        with `outside=True` one that no policy of the run selects. False if it existed."""
        own = {OUTSIDE_LABEL: run_id} if outside else {RUN_LABEL: run_id}
        body = client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name, labels={**own, **(labels or {})})
        )
        created = True
        try:
            self.core.create_namespace(body)
        except ApiException as err:
            if err.status != 409:
                raise
            created = False
        # The default ServiceAccount appears asynchronously; pods are rejected before
        # admission webhooks see them until it exists.
        until(
            lambda: self._has_default_sa(name),
            what=f"ServiceAccount default in namespace {name}",
            timeout=30,
            interval=0.02,
            backoff=2.0,
            max_interval=0.25,
        )
        return created

    def _has_default_sa(self, namespace: str) -> bool:
        try:
            self.core.read_namespaced_service_account("default", namespace)
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return True

    def delete_namespace(self, name: str, wait: float | None = 60.0) -> None:
        try:
            self.core.delete_namespace(name, grace_period_seconds=0)
        except ApiException as err:
            if err.status != 404:
                raise
        if wait:
            until(
                lambda: not self.namespace_exists(name),
                what=f"namespace {name} to be deleted",
                timeout=wait,
                interval=0.5,
            )

    def namespace_exists(self, name: str) -> bool:
        try:
            self.core.read_namespace(name)
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return True

    def run_namespaces(self, run_id: str) -> list[str]:
        """The run's namespaces, and those it made to stand outside its scope."""
        names: set[str] = set()
        for label in (RUN_LABEL, OUTSIDE_LABEL):
            items = self.core.list_namespace(label_selector=f"{label}={run_id}").items
            names.update(str(ns.metadata.name) for ns in items if ns.metadata)
        return sorted(names)

    def labelled_secrets(self, selector: str) -> list[tuple[dict[str, str], str, str]]:
        """(labels, namespace, name) of the secrets in every namespace matching `selector`."""
        items = self.core.list_secret_for_all_namespaces(label_selector=selector).items
        return [
            (dict(s.metadata.labels or {}), str(s.metadata.namespace), str(s.metadata.name))
            for s in items
            if s.metadata
        ]

    def delete_secret(self, namespace: str, name: str) -> None:
        try:
            self.core.delete_namespaced_secret(name, namespace)
        except ApiException as err:
            if err.status != 404:
                raise

    # -- pods and evidence ------------------------------------------------------------

    def wait_pod_phase(
        self, namespace: str, name: str, phase: str, timeout: float
    ) -> dict[str, Any]:
        last: dict[str, Any] = {}

        def probe() -> dict[str, Any] | None:
            nonlocal last
            last = self.core.read_namespaced_pod(name, namespace).to_dict()
            return last if last.get("status", {}).get("phase") == phase else None

        return until(
            probe,
            what=f"pod {namespace}/{name} to be {phase}",
            timeout=timeout,
            interval=0.5,
            describe=lambda: json.dumps(last.get("status", {}), default=str)[:1500],
        )

    def events(self, namespace: str) -> list[str]:
        try:
            items = self.core.list_namespaced_event(namespace).items
        except ApiException as err:
            return [f"(events unavailable: {err.status} {err.reason})"]
        lines = []
        for ev in sorted(items, key=lambda e: str(e.last_timestamp or e.event_time or "")):
            obj = ev.involved_object
            lines.append(
                f"{ev.last_timestamp or ev.event_time} {ev.type} {ev.reason} "
                f"{obj.kind}/{obj.name}: {ev.message}"
            )
        return lines

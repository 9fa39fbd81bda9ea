"""Helm releases a run installs (Kyverno in `--kyverno-mode install`, Policy Reporter with
`--policy-reporter`), each a context manager that removes what it installed.

A release is only ever installed where none exists: the run never upgrades or adopts
somebody else's Kyverno. Releases carry the run's label; the namespace is created by the
run (and labelled) only when it did not exist. On the way out: `helm uninstall` (its
pre-delete hook removes Kyverno's webhooks on a real cluster), then any Kyverno webhook
configuration still pointing at the release's namespace, because a fail-closed webhook
pointing at nothing blocks every pod of the cluster.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from signcheck.clients.k8s import Cluster
from signcheck.clients.k8sapi import ApiError, service_namespaces
from signcheck.errors import ConfigError, SigncheckError, ToolError
from signcheck.settings.config import Settings
from signcheck.target import RUN_LABEL, Registry
from signcheck.tools import helm
from signcheck.wait import until

KYVERNO_WEBHOOK_LABEL = "webhook.kyverno.io/managed-by=kyverno"
POLICY_REPORTER_CHART = "policy-reporter/policy-reporter"
POLICY_REPORTER_NAMESPACE = "policy-reporter"


@dataclass
class Release:
    name: str
    namespace: str
    chart: str
    created_namespace: bool = False
    values_summary: dict[str, Any] = field(default_factory=dict)
    chart_version: str | None = None
    """What Helm installed (`kyverno-3.9.1`), as `helm list` reports it."""
    created_crds: list[dict[str, Any]] = field(default_factory=list)
    """CRDs from the chart's `crds/` that the cluster did not have: Helm never removes
    them, so the run does."""
    app_version: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "chart": self.chart,
            "chart_version": self.chart_version,
            "app_version": self.app_version,
        }


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def regcred(settings: Settings, registry: Registry) -> helm.RegCred | None:
    """The seed's `imagePullSecrets.regcred`: the registry host, `json_key` and the
    authorized key file on Yandex; else the run's own registry credentials."""
    if settings.kyverno_regcred_password_file:
        password = settings.kyverno_regcred_password_file.read_text()
        username = settings.kyverno_regcred_username or "json_key"
        return helm.RegCred(registry.host, username, password)
    if registry.has_auth:
        assert registry.username and registry.password
        return helm.RegCred(
            registry.host, settings.kyverno_regcred_username or registry.username, registry.password
        )
    return None


def kyverno_values(
    settings: Settings, registry: Registry, environment: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What the run installs Kyverno with: the seed's `--set` values (`helm.seed_kyverno_values`)
    and the regcred from the registry credentials, then the environment's values (the local
    target's image mirror), all under the user's `--kyverno-values`."""
    values = helm.seed_kyverno_values(regcred(settings, registry))
    if environment:
        values = deep_merge(values, environment)
    if settings.kyverno_values:
        extra = yaml.safe_load(settings.kyverno_values.read_text()) or {}
        if not isinstance(extra, dict):
            raise ConfigError(f"--kyverno-values {settings.kyverno_values} is not a YAML map")
        values = deep_merge(values, extra)
    return values


def _ensure_namespace(cluster: Cluster, name: str, run_id: str) -> bool:
    """Create the namespace (labelled with the run) unless it exists; True if created."""
    if cluster.namespace_exists(name):
        return False
    return cluster.create_namespace(name, run_id)


def _refuse_existing(h: helm.Helm, release: str, namespace: str, what: str, hint: str) -> None:
    if any(r.get("name") == release for r in h.releases(namespace)):
        raise ConfigError(f"{what} is already installed (release {release} in {namespace}): {hint}")


def remove_kyverno_webhooks(cluster: Cluster, namespace: str) -> list[str]:
    """Delete Kyverno webhook configurations whose service lives in `namespace` (never
    those of another Kyverno, e.g. one running out of cluster)."""
    removed = []
    for cfg in cluster.webhook_configurations(KYVERNO_WEBHOOK_LABEL):
        services = [ns for ns in service_namespaces(cfg) if ns is not None]
        name = str(cfg["metadata"]["name"])
        if services and all(ns == namespace for ns in services):
            with contextlib.suppress(ApiError):
                cluster.delete_webhook_configuration(cfg["kind"], name)
                removed.append(name)
    return removed


@contextlib.contextmanager
def kyverno_release(
    settings: Settings,
    cluster: Cluster,
    registry: Registry,
    run_id: str,
    environment: dict[str, Any] | None = None,
    prepare: Callable[[Cluster, str], None] | None = None,
) -> Iterator[Release]:
    """`helm install kyverno` as the seed does (namespace, one replica, regcred).
    `prepare(cluster, namespace)` runs once the namespace exists, before the install (the
    local real node pre-makes Kyverno's certificates there, as cert-manager would)."""
    h = helm.Helm.pinned(cluster.kubeconfig, cluster.context)
    namespace = settings.kyverno_namespace
    _refuse_existing(
        h,
        helm.KYVERNO_RELEASE,
        namespace,
        "Kyverno",
        "run with --kyverno-mode existing (the run never upgrades a Kyverno it did not install)",
    )
    chart = settings.kyverno_chart or str(helm.bundled_chart())
    values = kyverno_values(settings, registry, environment)
    release = Release(helm.KYVERNO_RELEASE, namespace, chart)
    release.created_namespace = _ensure_namespace(cluster, namespace, run_id)
    try:
        release.created_crds = _missing(
            cluster, h.chart_crds(chart, settings.kyverno_chart_version)
        )
        if prepare is not None:
            prepare(cluster, namespace)
        try:
            h.install_kyverno(
                values,
                chart=chart,
                version=settings.kyverno_chart_version,
                namespace=namespace,
                labels={RUN_LABEL: run_id},
            )
        except ToolError as err:
            raise _install_error(err, "Kyverno", namespace) from err
        _describe(h, release)
        yield release
    finally:
        if not settings.keep:
            uninstall(cluster, h, release, settings.timeouts.release_delete)


def _missing(cluster: Cluster, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if cluster.get(o) is None]


def _describe(h: helm.Helm, release: Release) -> None:
    """The chart and app version Helm recorded for the release, for the summary."""
    for r in h.releases(release.namespace):
        if r.get("name") == release.name:
            release.chart_version = r.get("chart")
            release.app_version = r.get("app_version")


@contextlib.contextmanager
def policy_reporter_release(settings: Settings, cluster: Cluster, run_id: str) -> Iterator[Release]:
    """The seed's optional step: Policy Reporter, showing Kyverno's PolicyReports."""
    h = helm.Helm.pinned(cluster.kubeconfig, cluster.context)
    namespace = POLICY_REPORTER_NAMESPACE
    _refuse_existing(
        h,
        "policy-reporter",
        namespace,
        "Policy Reporter",
        "leave out --policy-reporter (the suite checks the PolicyReports it shows either way)",
    )
    chart = settings.policy_reporter_chart or POLICY_REPORTER_CHART
    release = Release("policy-reporter", namespace, chart)
    release.created_namespace = _ensure_namespace(cluster, namespace, run_id)
    # The seed's values: the UI and its Kyverno plugin on top of the reporter itself.
    values = {"ui": {"enabled": True}, "plugin": {"kyverno": {"enabled": True}}}
    try:
        try:
            h.install_kyverno(
                values,
                chart=chart,
                release="policy-reporter",
                namespace=namespace,
                labels={RUN_LABEL: run_id},
            )
        except ToolError as err:
            raise _install_error(err, "Policy Reporter", namespace) from err
        yield release
    finally:
        if not settings.keep:
            uninstall(cluster, h, release, settings.timeouts.release_delete)


def uninstall(cluster: Cluster, h: helm.Helm, release: Release, timeout: float) -> None:
    """`helm uninstall`, Kyverno's webhooks, the CRDs the install added from the chart's
    `crds/`, then every object the release made, awaited until gone (and deleted again
    where something made it again; also what the chart marks `helm.sh/resource-policy:
    keep`, Kyverno's ConfigMap: the run made it), so nothing of the run is left: with
    Kyverno's chart, kube-controller-manager's ClusterRole aggregation
    controller re-creates the aggregated `kyverno:*` ClusterRoles it is updating when Helm
    deletes them together with their parts (seen on Kubernetes 1.35: an empty, unlabelled
    `kyverno:admission-controller` left behind, and `helm uninstall --wait` waiting on it
    for its whole timeout)."""
    try:
        made = h.manifest(release.name, release.namespace)
    except ToolError:
        made = []  # no release (already gone): nothing to wait for
    h.uninstall(release.name, release.namespace)
    remove_kyverno_webhooks(cluster, release.namespace)
    for crd in release.created_crds:
        cluster.delete(crd)
    _await_gone(cluster, made + release.created_crds, release.namespace, timeout)
    if release.created_namespace:
        cluster.delete_namespace(release.namespace, wait=None)


def _await_gone(
    cluster: Cluster, objects: list[dict[str, Any]], namespace: str, timeout: float
) -> None:
    pending = []
    for obj in objects:
        meta = dict(obj.get("metadata") or {})
        if not meta.get("namespace") and cluster.namespaced(obj):
            meta["namespace"] = namespace
        pending.append({**obj, "metadata": meta})

    seen: dict[str, str] = {}

    def gone() -> bool:
        nonlocal pending
        still = []
        for obj in pending:
            live = cluster.get(obj)
            if live is None or _finalized_by_apiserver(live):
                continue
            still.append(obj)
            meta = live.get("metadata") or {}
            if not meta.get("deletionTimestamp"):
                cluster.delete(obj)  # made again after Helm deleted it
            seen[_ref(obj)] = _state(live)
        pending = still
        return not still

    def left() -> str:
        return ", ".join(f"{_ref(o)} ({seen.get(_ref(o), '?')})" for o in pending[:10])

    try:
        until(
            gone,
            what="the Helm release's objects to be deleted",
            timeout=timeout,
            interval=0.5,
            describe=left,
        )
    except SigncheckError as err:
        raise SigncheckError(
            f"after helm uninstall, {len(pending)} object(s) of the release are still "
            f"there: {left()}",
            err.details,
        ) from None


def _finalized_by_apiserver(live: dict[str, Any]) -> bool:
    """A CRD being deleted is the apiserver's to finish (its cleanup finalizer deletes the
    instances first): seen on 1.35, one of Kyverno's CRDs stayed Terminating for minutes on
    `could not list instances: storage is (re)initializing`, with nothing of the run in it."""
    deleting = (live.get("metadata") or {}).get("deletionTimestamp")
    return bool(deleting) and live.get("kind") == "CustomResourceDefinition"


def _ref(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def _state(live: dict[str, Any]) -> str:
    """What holds an object up: its finalizers, and its last condition's message."""
    meta = live.get("metadata") or {}
    if not meta.get("deletionTimestamp"):
        return "not being deleted: deleted again"
    parts = [f"deleting, finalizers {meta.get('finalizers') or []}"]
    conditions = (live.get("status") or {}).get("conditions") or []
    if conditions:
        last = conditions[-1]
        parts.append(f"{last.get('type')}={last.get('status')}: {last.get('message', '')}")
    return "; ".join(parts)


def _install_error(err: ToolError, what: str, namespace: str) -> ConfigError:
    out = err.stderr or err.stdout
    if "cannot be imported into the current release" in out or "exists and cannot" in out:
        return ConfigError(
            f"helm cannot install {what} in {namespace}: objects of another {what} installation "
            "are in the cluster (see below); use --kyverno-mode existing or remove them",
            err.details,
        )
    if "no cached repo" in out or ("repo" in out and "not found" in out):
        return ConfigError(
            f"helm does not know the chart's repository: run the seed's `helm repo add` "
            f"first, or give a chart path ({what})",
            err.details,
        )
    return ConfigError(f"helm could not install {what} in namespace {namespace}", err.details)

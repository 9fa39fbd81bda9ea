"""Preflight: everything a cluster run needs, checked before any test, in the order a user
would fix it. The first failure is one `PreflightError` whose first sentence names what to
fix; nothing has been changed in the cluster or the registry by then.

Checks: the tools (pinned cosign, helm when installing, a Docker engine when building
with it), the kubeconfig and its context, the API server answering, the permissions the
run uses (`kubectl auth can-i`, as SelfSubjectAccessReviews), the registry answering and
accepting the credentials, the signing key; then, once Kyverno is there (installed by the
run or not), Kyverno installed and its webhooks registered and answering, and the run's
policy accepted by the cluster (a server-side dry run, which passes through Kyverno's own
policy webhook and any admission rule the cluster has).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from signcheck.artefacts import signing
from signcheck.clients import oci
from signcheck.clients.k8s import Cluster
from signcheck.clients.k8sapi import ApiError, service_namespaces
from signcheck.errors import ConfigError, SigncheckError
from signcheck.kyverno import cpol
from signcheck.providers.permissions import INSTALL_PERMISSIONS, RUN_PERMISSIONS, describe
from signcheck.settings.config import Settings
from signcheck.target import Registry
from signcheck.tools import gobuild
from signcheck.tools.cosign import Cosign
from signcheck.wait import until

KYVERNO_WEBHOOK_LABEL = "webhook.kyverno.io/managed-by=kyverno"
# Registered by Kyverno's admission controller at start, before any policy exists.
KYVERNO_WEBHOOKS = (
    ("validating", "kyverno-policy-validating-webhook-cfg"),
    ("validating", "kyverno-resource-validating-webhook-cfg"),
    ("mutating", "kyverno-resource-mutating-webhook-cfg"),
)


class PreflightError(ConfigError):
    """One preflight check failed: `message` says what to fix, `check` which check.

    `environment`: the input was fine but the cluster or the registry is not usable as it is
    (unreachable, Kyverno missing or not answering, a cluster rule refusing the policy): the
    run exits 6, not 4 (bad input)."""

    def __init__(
        self, check: str, message: str, details: str = "", *, environment: bool = False
    ) -> None:
        super().__init__(message, details)
        self.check = check
        self.environment = environment


@dataclass
class Result:
    check: str
    ok: bool
    seconds: float
    detail: str = ""


@dataclass
class Preflight:
    settings: Settings
    kubeconfig: Path
    context: str | None
    registry: Registry
    workdir: Path
    results: list[Result] = field(default_factory=list)
    _cluster: Cluster | None = None

    # -- plumbing ---------------------------------------------------------------------

    @contextmanager
    def _check(self, name: str, *, environment: bool = False) -> Iterator[list[str]]:
        """Time one check; any SigncheckError inside becomes its PreflightError (an
        environment failure when the check is about the environment, not the input)."""
        started = time.monotonic()
        notes: list[str] = []
        try:
            yield notes
        except PreflightError as err:
            self.results.append(Result(name, False, time.monotonic() - started, err.message))
            raise
        except SigncheckError as err:
            self.results.append(Result(name, False, time.monotonic() - started, err.message))
            raise PreflightError(name, err.message, err.details, environment=environment) from err
        self.results.append(Result(name, True, time.monotonic() - started, "; ".join(notes)))

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            self._cluster = Cluster(self.kubeconfig, self.context)
        return self._cluster

    def summary(self) -> list[dict[str, Any]]:
        return [
            {"check": r.check, "ok": r.ok, "seconds": round(r.seconds, 3), "detail": r.detail}
            for r in self.results
        ]

    # -- before anything changes ------------------------------------------------------

    def before_install(self) -> Cosign:
        """Every check that needs no Kyverno; returns the cosign the run will use."""
        cosign = self.tools()
        self.kubeconfig_context()
        self.cluster_reachable()
        self.permissions()
        self.registry_access()
        self.signing_key(cosign)
        return cosign

    def tools(self) -> Cosign:
        s = self.settings
        with self._check("tools") as notes:
            needed = [s.cosign_tool]
            if s.kyverno_mode == "install" or s.policy_reporter:
                needed.append("helm")
            try:
                gobuild.ensure(needed)
            except SigncheckError as err:
                raise PreflightError("tools", err.message, err.details) from err
            if s.image_builder == "docker":
                from signcheck.artefacts import dockerbuild

                notes.append(dockerbuild.check_engine())
            cosign = Cosign.from_tools(
                self.registry, self.workdir / "cosign-preflight", s.cosign_tool, s.timeouts.cosign
            )
            notes.append(f"{s.cosign_tool} {cosign.version}")
        return cosign

    def kubeconfig_context(self) -> None:
        with self._check("kubeconfig") as notes:
            where = self.settings.source("kubeconfig")
            if not self.kubeconfig.is_file():
                raise PreflightError(
                    "kubeconfig",
                    f"kubeconfig {self.kubeconfig} does not exist ({where}): pass --kubeconfig "
                    "or set KUBECONFIG",
                )
            try:
                data = yaml.safe_load(self.kubeconfig.read_text()) or {}
            except yaml.YAMLError as err:
                raise PreflightError(
                    "kubeconfig", f"kubeconfig {self.kubeconfig} is not valid YAML: {err}"
                ) from None
            names = [c.get("name") for c in data.get("contexts") or [] if isinstance(c, dict)]
            chosen = self.context or data.get("current-context")
            if not chosen:
                raise PreflightError(
                    "kubeconfig",
                    f"kubeconfig {self.kubeconfig} has no current-context: pass --context "
                    f"(it has: {', '.join(map(str, names)) or 'no contexts'})",
                )
            if chosen not in names:
                raise PreflightError(
                    "kubeconfig",
                    f"context {chosen!r} is not in kubeconfig {self.kubeconfig} "
                    f"({self.settings.source('context')}); it has: "
                    f"{', '.join(map(str, names)) or 'no contexts'}",
                )
            notes.append(f"context {chosen}")

    def cluster_reachable(self) -> str:
        with self._check("cluster", environment=True) as notes:
            try:
                version = self.cluster.ping()
            except SigncheckError as err:
                server = self.cluster.server
                raise PreflightError(
                    "cluster",
                    f"the cluster at {server} is unreachable (context "
                    f"{self.context or 'current'} of {self.kubeconfig}): check the network, "
                    "VPN or the kubeconfig's server address",
                    err.details,
                    environment=True,
                ) from err
            notes.append(f"Kubernetes {version}")
        return version

    def permissions(self) -> None:
        wanted = list(RUN_PERMISSIONS)
        if self.settings.kyverno_mode == "install" or self.settings.policy_reporter:
            wanted += INSTALL_PERMISSIONS
        with self._check("permissions") as notes:
            # One SelfSubjectAccessReview each, four at a time (the API client's connection
            # pool): ~80 round trips one after another otherwise.
            with ThreadPoolExecutor(max_workers=4) as pool:
                allowed = list(pool.map(lambda p: self.cluster.can_i(*p), wanted))
            denied = [describe(*p) for p, ok in zip(wanted, allowed, strict=True) if not ok]
            if denied:
                raise PreflightError(
                    "permissions",
                    f"the kubeconfig's user (context {self.context or 'current'}) may not "
                    f"{', '.join(denied)}: grant these (the run needs them) or use another "
                    "context; check with `kubectl auth can-i`",
                )
            notes.append(f"{len(wanted)} permissions allowed")

    def registry_access(self) -> None:
        with self._check("registry") as notes:
            try:
                client = oci.OciClient(self.registry)
                client.ping()
                if self.settings.image:
                    from signcheck.artefacts.images import split_reference

                    repo, ref = split_reference(self.settings.image)
                    if client.resolve(repo, ref) is None:
                        raise PreflightError(
                            "registry",
                            f"--image {self.settings.image} does not exist in the registry: "
                            "push it first or fix the reference",
                        )
            except PreflightError:
                raise
            except SigncheckError as err:
                credentials = "credentials" in err.message
                fix = (
                    "check SIGNCHECK_REGISTRY_PASSWORD and --registry-username"
                    if credentials
                    else "check --registry (host, port, scheme) and that it is up"
                )
                # Wrong or missing credentials are the input; a registry that does not
                # answer (or answers with an error) is the environment.
                raise PreflightError(
                    "registry", f"{err.message}: {fix}", err.details, environment=not credentials
                ) from err
            notes.append(f"{self.registry.scheme}://{self.registry.host}")

    def signing_key(self, cosign: Cosign) -> None:
        with self._check("signing key") as notes:
            key = signing.main_key(
                self.settings, cosign, self.workdir / "keys-preflight", create=False
            )
            notes.append(key.key_ref if key else "generated per run")

    # -- once Kyverno is there --------------------------------------------------------

    def kyverno_ready(self, namespace: str, timeout: float, installed: bool = False) -> None:
        """Kyverno installed, its admission controller ready, its webhooks registered.

        `installed`: the run installed Kyverno in `namespace`, so the webhooks must be that
        Kyverno's (pointing at its service there), not those of some other Kyverno."""
        with self._check("kyverno", environment=True) as notes:
            try:
                self.cluster.list_objects(cpol.GROUP, cpol.VERSION, cpol.PLURAL, limit=1)
            except ApiError as err:
                if err.status == 404:
                    raise PreflightError(
                        "kyverno",
                        "Kyverno is not installed in this cluster (the API server does not know "
                        "ClusterPolicy kyverno.io/v1): install it, or run with --kyverno-mode "
                        "install",
                        environment=True,
                    ) from err
                raise
            self._deployment_ready(namespace)
            last = ""

            def registered() -> bool:
                nonlocal last
                missing = self._missing_webhooks(namespace if installed else None)
                last = ", ".join(missing)
                return not missing

            try:
                until(
                    registered,
                    what="Kyverno's webhook configurations",
                    timeout=timeout,
                    interval=1.0,
                )
            except SigncheckError:
                whose = f" by the Kyverno in namespace {namespace}" if installed else ""
                raise PreflightError(
                    "kyverno",
                    f"Kyverno is installed but its webhooks are not ready: {last} not "
                    f"registered{whose} after {timeout:g}s; check Kyverno's pods and logs in "
                    f"namespace {namespace}",
                    environment=True,
                ) from None
            notes.append("webhooks registered")

    def _deployment_ready(self, namespace: str) -> None:
        # In-cluster Kyverno only; an out-of-cluster one (the local target) has no pods.
        deps = self.cluster.deployments(
            namespace, label_selector="app.kubernetes.io/component=admission-controller"
        )
        for dep in deps:
            replicas = (dep.get("spec") or {}).get("replicas")
            want = 1 if replicas is None else replicas
            ready = (dep.get("status") or {}).get("readyReplicas") or 0
            name = (dep.get("metadata") or {}).get("name", "?")
            if want and ready < 1:
                raise PreflightError(
                    "kyverno",
                    f"Kyverno is installed but its webhooks are not ready: deployment "
                    f"{namespace}/{name} has {ready}/{want} ready replicas; "
                    f"check `kubectl -n {namespace} describe deployment {name}`",
                    environment=True,
                )

    def _missing_webhooks(self, service_namespace: str | None) -> list[str]:
        def ours(cfg: dict[str, Any]) -> bool:
            # A configuration without webhooks yet (the resource ones, before any policy)
            # says nothing about whose it is; the policy webhook configuration always does.
            if service_namespace is None or not cfg.get("webhooks"):
                return True
            return all(ns == service_namespace for ns in service_namespaces(cfg))

        found = {
            (cfg["kind"].removesuffix("WebhookConfiguration").lower(), cfg["metadata"]["name"])
            for cfg in self.cluster.webhook_configurations(KYVERNO_WEBHOOK_LABEL)
            if ours(cfg)
        }
        return [name for kind, name in KYVERNO_WEBHOOKS if (kind, name) not in found]

    def policy_accepted(self, policy: dict[str, Any]) -> None:
        """A server-side dry run of the run's policy: Kyverno's policy webhook (fail-closed)
        answers it, so a Kyverno that is down shows here, and so does a policy the cluster's
        own admission rules refuse."""
        name = policy["metadata"]["name"]
        with self._check("policy") as notes:
            try:
                self.cluster.create_object(
                    cpol.GROUP, cpol.VERSION, cpol.PLURAL, policy, dry_run=True
                )
            except ApiError as err:
                message = err.server_message
                if err.status == 409:
                    notes.append(f"{name} exists already")
                    return
                if "failed calling webhook" in message:
                    raise PreflightError(
                        "kyverno",
                        "Kyverno is installed but its webhooks are not ready: the API server "
                        f"could not call them ({_short(message)}); check Kyverno's pods/process "
                        "and that the API server can reach its service",
                        message,
                        environment=True,
                    ) from err
                raise PreflightError(
                    "policy",
                    f"the cluster rejects the run's ClusterPolicy {name}: {_short(message)}; "
                    "fix the option that shapes the policy or the cluster admission rule "
                    "that refuses it",
                    message,
                    # Kyverno's policy webhook judges the policy (the options shaped it);
                    # anything else refusing it is a rule of the cluster.
                    environment="kyverno.svc" not in message,
                ) from err
            notes.append(f"{name} accepted (dry run)")


def _short(message: str, limit: int = 400) -> str:
    flat = " ".join(message.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."

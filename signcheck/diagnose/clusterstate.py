"""What the posture checks read from a cluster, once: Kyverno's webhook configurations, its
ConfigMap and Deployment, the namespaces, and every other admission webhook and admission
policy. Each read is best effort (`reads.Reads`); `facts()` is the JSON-able account of it
for the report, including what could not be read and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from signcheck.clients.k8s import Cluster
from signcheck.diagnose import kyvernoconf, webhooks
from signcheck.diagnose.reads import Reads

ADMREG = "admissionregistration.k8s.io"
VAPS = "validatingadmissionpolicies"
MAP_VERSIONS = ("v1", "v1beta1", "v1alpha1")
"""MutatingAdmissionPolicy is beta in Kubernetes 1.34+ and may be served at any of these."""
ADMISSION_COMPONENT = "app.kubernetes.io/component=admission-controller"
"""The chart's label on the admission controller's Deployment and pods."""


def image_tag(image: str) -> str | None:
    """The tag of an image reference (`reg:5000/kyverno/kyverno:v1.19.1@sha256:..`)."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _kyverno_container(deployment: dict[str, Any]) -> dict[str, Any] | None:
    spec = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in spec.get("containers") or []:
        if container.get("name") == "kyverno":
            return dict(container)
    return None


@dataclass
class ClusterState:
    kyverno_namespace: str
    run_label: str | None = None
    reads: Reads | None = None
    kyverno_configs: list[dict[str, Any]] = field(default_factory=list)
    other_configs: list[dict[str, Any]] = field(default_factory=list)
    webhooks_read: bool = False
    namespaces: dict[str, dict[str, str]] | None = None
    """Name -> labels of every namespace but the run's own; None when unreadable."""
    run_namespaces: list[str] = field(default_factory=list)
    configmap_name: str = "kyverno"
    configmap: dict[str, Any] | None = None
    config: kyvernoconf.KyvernoConfig = field(default_factory=lambda: kyvernoconf.parse(None))
    deployment: dict[str, Any] | None = None
    container: dict[str, Any] | None = None
    flags: kyvernoconf.Flags | None = None
    runs: str = "not known (neither its Deployment nor its webhooks could be read)"
    version: str | None = None
    version_source: str = ""
    vaps: list[dict[str, Any]] = field(default_factory=list)
    vap_bindings: list[dict[str, Any]] = field(default_factory=list)
    maps: list[dict[str, Any]] = field(default_factory=list)
    map_bindings: list[dict[str, Any]] = field(default_factory=list)
    map_version: str | None = None

    @property
    def unreadable(self) -> dict[str, str]:
        return self.reads.unreadable if self.reads else {}

    def kyverno_pod_webhooks(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return webhooks.pod_webhooks(self.kyverno_configs)

    def is_run_namespace(self, labels: dict[str, str]) -> bool:
        if not self.run_label:
            return False
        key, eq, value = self.run_label.partition("=")
        return key in labels and (not eq or labels[key] == value)

    @staticmethod
    def other_policy_facts(
        policies: list[dict[str, Any]], bindings: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Admission policies on pods that Kyverno did not generate, with their bindings."""
        return [
            webhooks.policy_facts(p, webhooks.bindings_of(webhooks.name_of(p), bindings))
            for p in policies
            if webhooks.policy_covers_pods(p) and not webhooks.is_kyverno_generated(p)
        ]

    def facts(self) -> dict[str, Any]:
        others = [webhooks.configuration_facts(c) for c in self.other_configs]
        return {
            "kyverno": {
                "namespace": self.kyverno_namespace,
                "runs": self.runs,
                "version": self.version,
                "version_source": self.version_source,
                "deployment": webhooks.name_of(self.deployment) if self.deployment else None,
                "image": (self.container or {}).get("image"),
                "flags": self.flags.as_facts() if self.flags else None,
                "flags_readable": self.flags is not None,
                "configmap": {
                    "name": self.configmap_name,
                    "found": self.configmap is not None,
                    "settings": self.config.as_facts() if self.configmap is not None else None,
                },
            },
            "kyverno_webhook_configurations": {
                webhooks.name_of(c): webhooks.configuration_facts(c) for c in self.kyverno_configs
            },
            "namespaces": sorted(self.namespaces) if self.namespaces is not None else None,
            "run_namespaces_left_out": self.run_namespaces,
            "other_admission_on_pods": {
                "webhook_configurations": [
                    c for c in others if any(w["acts_on_pods"] for w in c["webhooks"])
                ],
                "validating_admission_policies": self.other_policy_facts(
                    self.vaps, self.vap_bindings
                ),
                "mutating_admission_policies": self.other_policy_facts(
                    self.maps, self.map_bindings
                ),
                "mutating_admission_policy_version": self.map_version,
            },
            "kyverno_generated_admission_policies": sorted(
                webhooks.name_of(p)
                for p in self.vaps + self.maps
                if webhooks.is_kyverno_generated(p)
            ),
            "unreadable": dict(self.unreadable),
            "not_served": list(self.reads.not_served) if self.reads else [],
        }


def read(
    cluster: Cluster,
    kyverno_namespace: str,
    *,
    run_namespaces_label: str | None = None,
    kyverno_version: str | None = None,
) -> ClusterState:
    reads = Reads(cluster)
    state = ClusterState(kyverno_namespace, run_namespaces_label, reads)
    _read_webhooks(state, reads)
    _read_namespaces(state, reads)
    _read_kyverno(state, reads, kyverno_version)
    state.vaps = reads.objects(VAPS, f"{ADMREG}/v1", "ValidatingAdmissionPolicy") or []
    state.vap_bindings = (
        reads.objects(
            "validatingadmissionpolicybindings", f"{ADMREG}/v1", "ValidatingAdmissionPolicyBinding"
        )
        or []
    )
    state.map_version, maps = reads.list_first_served(
        "mutatingadmissionpolicies", ADMREG, MAP_VERSIONS, "MutatingAdmissionPolicy"
    )
    state.maps = maps or []
    if state.map_version:
        state.map_bindings = (
            reads.objects(
                "mutatingadmissionpolicybindings",
                f"{ADMREG}/{state.map_version}",
                "MutatingAdmissionPolicyBinding",
            )
            or []
        )
    return state


def _read_webhooks(state: ClusterState, reads: Reads) -> None:
    configs: list[dict[str, Any]] = []
    state.webhooks_read = True
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        listed = reads.objects(kind, f"{ADMREG}/v1", kind)
        if listed is None:
            state.webhooks_read = False
        configs += [{**c, "kind": kind} for c in listed or []]
    for cfg in configs:
        if webhooks.is_kyverno_webhook(cfg, state.kyverno_namespace):
            state.kyverno_configs.append(cfg)
        else:
            state.other_configs.append(cfg)


def _read_namespaces(state: ClusterState, reads: Reads) -> None:
    listed = reads.objects("namespaces", "v1", "Namespace")
    if listed is None:
        return
    state.namespaces = {}
    for ns in listed:
        labels = webhooks.labels_of(ns)
        if state.is_run_namespace(labels):
            state.run_namespaces.append(webhooks.name_of(ns))
        else:
            state.namespaces[webhooks.name_of(ns)] = labels


def _read_kyverno(state: ClusterState, reads: Reads, given_version: str | None) -> None:
    ns = state.kyverno_namespace
    deployments = reads.objects(f"deployments in {ns}", "apps/v1", "Deployment", namespace=ns)
    for dep in deployments or []:
        container = _kyverno_container(dep)
        labelled = webhooks.labels_of(dep).get("app.kubernetes.io/component")
        if container is not None and labelled in ("admission-controller", None):
            state.deployment, state.container = dep, container
            break
    if state.container is not None and state.deployment is not None:
        state.flags = kyvernoconf.container_flags(state.container)
        state.runs = f"in the cluster: Deployment {ns}/{webhooks.name_of(state.deployment)}"
        env = {e.get("name"): e.get("value") for e in state.container.get("env") or []}
        state.configmap_name = str(env.get("INIT_CONFIG") or "kyverno")
        tag = image_tag(str(state.container.get("image") or ""))
        if tag:
            state.version = tag
            state.version_source = (
                f"the image of Deployment {ns}/{webhooks.name_of(state.deployment)}"
            )
    else:
        urls = sorted(
            {
                _origin(str((w.get("clientConfig") or {}).get("url")))
                for c in state.kyverno_configs
                for w in webhooks.cfg_webhooks(c)
                if (w.get("clientConfig") or {}).get("url")
            }
        )
        if urls:
            # Kyverno's out-of-cluster mode (`--serverIP`): its webhooks call a URL, and its
            # flags live on a command line the cluster cannot show.
            state.runs = f"outside the cluster: its webhooks call {urls[0]}"
        elif deployments is not None:
            state.runs = f"no Deployment of Kyverno's admission controller in namespace {ns}"
        if deployments is None:
            # The pods may be readable where the Deployments are not (a namespace viewer).
            _version_from_pods(state, reads)
    if state.version is None and given_version:
        state.version, state.version_source = given_version, "as the run's target reported it"
    state.configmap = reads.get(
        f"ConfigMap {ns}/{state.configmap_name}", "v1", "ConfigMap", state.configmap_name, ns
    )
    if state.configmap is not None:
        state.config = kyvernoconf.parse(state.configmap.get("data"))


def _version_from_pods(state: ClusterState, reads: Reads) -> None:
    ns = state.kyverno_namespace
    pods = reads.objects(
        f"pods in {ns}", "v1", "Pod", namespace=ns, label_selector=ADMISSION_COMPONENT
    )
    for pod in pods or []:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            tag = (
                image_tag(str(status.get("image") or ""))
                if status.get("name") == "kyverno"
                else None
            )
            if tag:
                state.version = tag
                state.version_source = f"the image of pod {ns}/{webhooks.name_of(pod)}"
                return

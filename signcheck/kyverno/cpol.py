"""Kyverno policies for the suite: render the seed's `ClusterPolicy` and its variants, apply
them, wait until Kyverno reports them Ready, delete them. (The `ImageValidatingPolicy` twin is
rendered by `signcheck.kyverno.ivpol`; both kinds share the client here.)

By default a policy is scoped to the run: it matches only namespaces labelled with the run id,
so a run on a shared cluster never blocks anybody else's pods. Policy *variants* (Audit, two
keys, `mutateDigest: false`...) coexist in one run: each matches only the run's namespaces
that also carry `signcheck.io/variant=<variant>`, and the seed's policy matches only the
run's namespaces without that label. `seed_exact=True` renders the tutorial's cluster-wide
policy unchanged (plus the offline tlog/SCT switches).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal, cast

import yaml

from signcheck.clients.admission import Denied
from signcheck.clients.k8s import Cluster
from signcheck.clients.k8s import pod as k8s_pod
from signcheck.clients.k8sapi import ApiError
from signcheck.errors import EnvironmentNotReady, WebhookUnavailable
from signcheck.target import RUN_LABEL, Target
from signcheck.wait import until

VARIANT_LABEL = "signcheck.io/variant"
"""Namespace label naming the policy variant that governs the namespace (absent: the seed's
policy)."""

GROUP, VERSION, PLURAL = "kyverno.io", "v1", "clusterpolicies"

Action = Literal["enforce", "Enforce", "audit", "Audit"]
SignatureType = Literal["Cosign", "SigstoreBundle"]


@dataclass(frozen=True)
class PolicySpec:
    """Everything that varies between the ClusterPolicies a run applies."""

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
    variant: str | None = None
    """Match only the run's namespaces labelled `signcheck.io/variant=<variant>`; None is the
    seed's policy, which matches the run's namespaces *without* that label."""
    skip_image_references: tuple[str, ...] = ()
    mutate_digest: bool = True
    """Kyverno refuses `mutateDigest: true` (its default) on an Audit policy."""
    verify_digest: bool = True
    required: bool = True
    use_cache: bool = True
    signature_type: SignatureType = "Cosign"
    """`Cosign` reads legacy `.sig` signatures, `SigstoreBundle` cosign v3's bundles."""
    registry_credentials: dict[str, Any] | None = None
    """`imageRegistryCredentials` of the rule; when set, Kyverno uses only these (never its
    global `--imagePullSecrets`)."""
    extra_labels: dict[str, str] = field(default_factory=dict)


def _keys_entry(pem: str, offline: bool) -> dict[str, Any]:
    keys: dict[str, Any] = {"publicKeys": pem.strip()}
    if offline:
        keys["rekor"] = {"ignoreTlog": True}
        keys["ctlog"] = {"ignoreSCT": True}
    return {"keys": keys}


def namespace_selector(run_id: str, variant: str | None) -> dict[str, Any]:
    """The run's namespaces governed by `variant` (None: the seed's policy)."""
    if variant is None:
        return {
            "matchLabels": {RUN_LABEL: run_id},
            "matchExpressions": [{"key": VARIANT_LABEL, "operator": "DoesNotExist"}],
        }
    return {"matchLabels": {RUN_LABEL: run_id, VARIANT_LABEL: variant}}


def run_policy(target: Target, public_keys: tuple[str, ...], **overrides: Any) -> dict[str, Any]:
    """The seed's ClusterPolicy scoped to one run: its images, its namespaces, these keys."""
    spec = PolicySpec(
        run_id=target.run_id,
        image_references=(target.registry.run_glob(target.run_id),),
        public_keys=public_keys,
        **overrides,
    )
    return render_cluster_policy(spec)


def render_cluster_policy(spec: PolicySpec) -> dict[str, Any]:
    """The seed's ClusterPolicy `check-image`, filled in for this run (and its variant)."""
    resources: dict[str, Any] = {"kinds": ["Pod"]}
    if not spec.seed_exact:
        resources["namespaceSelector"] = namespace_selector(spec.run_id, spec.variant)
    verify: dict[str, Any] = {}
    if spec.signature_type != "Cosign":
        verify["type"] = spec.signature_type
    verify["imageReferences"] = list(spec.image_references)
    verify["attestors"] = [
        {"count": 1, "entries": [_keys_entry(k, spec.offline) for k in spec.public_keys]}
    ]
    # Only what differs from Kyverno's defaults, so the seed's policy stays the seed's.
    for key, value, default in (
        ("mutateDigest", spec.mutate_digest, True),
        ("verifyDigest", spec.verify_digest, True),
        ("required", spec.required, True),
        ("useCache", spec.use_cache, True),
    ):
        if value != default:
            verify[key] = value
    if spec.skip_image_references:
        verify["skipImageReferences"] = list(spec.skip_image_references)
    if spec.registry_credentials is not None:
        verify["imageRegistryCredentials"] = copy.deepcopy(spec.registry_credentials)
    labels = {RUN_LABEL: spec.run_id, **spec.extra_labels}
    if spec.variant:
        labels[VARIANT_LABEL] = spec.variant
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ClusterPolicy",
        "metadata": {"name": spec.name, "labels": labels},
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


def autogen_rule(rule: str, kind: str) -> str:
    """The rule Kyverno generates from a Pod rule for a workload kind (its autogen naming)."""
    if kind == "Pod":
        return rule
    return f"autogen-cronjob-{rule}" if kind == "CronJob" else f"autogen-{rule}"


def ready_condition(policy: dict[str, Any]) -> dict[str, Any] | None:
    for cond in policy.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == "Ready":
            return dict(cond)
    return None


def is_ready(policy: dict[str, Any]) -> bool:
    cond = ready_condition(policy)
    if not (cond and cond.get("status") == "True"):
        return False
    # A Ready condition from before the last spec change is stale.
    generation = policy.get("metadata", {}).get("generation")
    return bool(cond.get("observedGeneration", generation) == generation)


def ivpol_is_ready(policy: dict[str, Any]) -> bool:
    """ImageValidatingPolicy: `status.conditionStatus.ready` (webhook configured and, with
    background scanning on, the reports controller's RBAC checked)."""
    status: dict[str, Any] = (policy.get("status") or {}).get("conditionStatus") or {}
    if status.get("ready"):
        return True
    # Kyverno before 1.19 checks the reports controller's read permissions for every policy,
    # also one that never scans in background (1.19 skips it: policystatus
    # reconcileRBACPermissionsCondition), so an ImageValidatingPolicy that matches
    # pods/ephemeralcontainers is never `ready` on a standard 1.18 install, although its
    # webhook is configured and admission enforces it. The run tests admission: for a policy
    # without background scanning, that condition alone is not a reason to wait.
    conditions = status.get("conditions") or []
    failed = {c.get("type") for c in conditions if c.get("status") != "True"}
    webhook = any(
        c.get("type") == "WebhookConfigured" and c.get("status") == "True" for c in conditions
    )
    evaluation = (policy.get("spec") or {}).get("evaluation") or {}
    background = (evaluation.get("background") or {}).get("enabled", True)
    return webhook and failed == {"RBACPermissionsGranted"} and background is False


@dataclass(frozen=True)
class Kind:
    """A cluster-scoped Kyverno policy kind, as the API server serves it."""

    kind: str
    group: str
    version: str
    plural: str
    ready: Callable[[dict[str, Any]], bool]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


CLUSTER_POLICY = Kind("ClusterPolicy", GROUP, VERSION, PLURAL, is_ready)
IMAGE_VALIDATING_POLICY = Kind(
    "ImageValidatingPolicy", "policies.kyverno.io", "v1", "imagevalidatingpolicies", ivpol_is_ready
)
KINDS = (CLUSTER_POLICY, IMAGE_VALIDATING_POLICY)


def kind_of(policy: dict[str, Any]) -> Kind:
    for k in KINDS:
        if k.kind == policy.get("kind"):
            return k
    raise ValueError(f"not a policy kind signcheck knows: {policy.get('kind')!r}")


class Policies:
    """Policies of one kind (ClusterPolicy by default) through the API server."""

    def __init__(self, cluster: Cluster, kind: Kind = CLUSTER_POLICY) -> None:
        self.cluster = cluster
        self.kind = kind

    def _args(self) -> tuple[str, str, str]:
        return self.kind.group, self.kind.version, self.kind.plural

    def get(self, name: str) -> dict[str, Any] | None:
        return self.cluster.get_object(*self._args(), name)

    def apply(self, policy: dict[str, Any]) -> dict[str, Any]:
        """Create, or replace what is there (keeping nothing of the old spec)."""
        name = policy["metadata"]["name"]
        try:
            return self.cluster.create_object(*self._args(), policy)
        except ApiError as err:
            if err.status == 404:
                raise EnvironmentNotReady(
                    f"Kyverno is not installed: the API server does not know {self.kind.kind} "
                    f"({self.kind.api_version})"
                ) from err
            if err.status != 409:
                raise EnvironmentNotReady(
                    f"the cluster rejected {self.kind.kind} {name}", err.server_message
                ) from err
        current = self.get(name) or {}
        body = copy.deepcopy(policy)
        body["metadata"]["resourceVersion"] = current.get("metadata", {}).get("resourceVersion")
        return self.cluster.replace_object(*self._args(), name, body)

    def wait_ready(self, name: str, timeout: float) -> dict[str, Any]:
        """Wait until Kyverno reports the policy Ready (its webhooks are configured for it)."""
        return wait_all_ready(self.cluster, [(self.kind, name)], timeout)[name]

    def delete(self, name: str) -> bool:
        return self.cluster.delete_object(*self._args(), name)

    def run_policies(self, run_id: str) -> list[str]:
        try:
            items = self.cluster.list_objects(*self._args(), label_selector=f"{RUN_LABEL}={run_id}")
        except ApiError as err:
            if err.status == 404:
                return []
            raise
        return sorted(i["metadata"]["name"] for i in items)


def apply_all(cluster: Cluster, policies: Iterable[dict[str, Any]], timeout: float) -> None:
    """Apply several policies (of either kind), then wait once until all are Ready: Kyverno
    reconfigures its webhooks for all of them together."""
    pending = []
    for policy in policies:
        kind = kind_of(policy)
        Policies(cluster, kind).apply(policy)
        pending.append((kind, policy["metadata"]["name"]))
    wait_all_ready(cluster, pending, timeout)


def wait_all_ready(
    cluster: Cluster, policies: list[tuple[Kind, str]], timeout: float
) -> dict[str, dict[str, Any]]:
    last: dict[str, dict[str, Any]] = {}

    def probe() -> dict[str, dict[str, Any]] | None:
        for kind, name in policies:
            if name in last and kind.ready(last[name]):
                continue
            last[name] = Policies(cluster, kind).get(name) or {}
        return last if all(kind.ready(last[name]) for kind, name in policies) else None

    def describe() -> str:
        waiting = {
            f"{kind.kind} {name}": (last.get(name) or {}).get("status", "no status yet")
            for kind, name in policies
            if not kind.ready(last.get(name) or {})
        }
        return json.dumps(waiting, default=str)[:3000]

    names = ", ".join(name for _, name in policies)
    return until(
        probe,
        what=f"{names} to become Ready",
        timeout=timeout,
        interval=0.25,
        describe=describe,
    )


def delete_run_policies(cluster: Cluster, run_id: str) -> list[str]:
    """Delete every policy (of every kind) labelled with the run id; returns what it deleted."""
    deleted = []
    for kind in KINDS:
        client = Policies(cluster, kind)
        for name in client.run_policies(run_id):
            if client.delete(name):
                deleted.append(f"{kind.kind}/{name}")
    return deleted


def run_policies(cluster: Cluster, run_id: str) -> list[str]:
    """`Kind/name` of every policy of the run still there."""
    return [
        f"{kind.kind}/{name}"
        for kind in KINDS
        for name in Policies(cluster, kind).run_policies(run_id)
    ]


def seed_policy() -> dict[str, Any]:
    """The seed's policy.yaml, verbatim with its placeholders (`signcheck/data`)."""
    text = (resources.files("signcheck.kyverno") / "data" / "seed-policy.yaml").read_text()
    return cast(dict[str, Any], yaml.safe_load(text))


PROBE_IMAGE = "signcheck.invalid/namespace-probe:never"
"""An image no policy's `imageReferences` matches (and nothing ever pulls: dry run only)."""


REFUSAL_GRACE = 3.0
"""Seconds an answer that is not Kyverno's cache race may persist before the wait gives up:
another admission with a namespace cache of its own may race a new namespace as Kyverno's
does, and one call to Kyverno's webhook may time out on a loaded machine; a dead Kyverno or
a rule that refuses the probe refuses it for longer."""


def wait_namespace_seen(cluster: Cluster, namespace: str, run_id: str, timeout: float) -> None:
    """Wait until Kyverno's namespace cache holds `namespace` (with its labels).

    Kyverno evaluates `namespaceSelector` against an informer cache. For a namespace created a
    moment ago its image-verification (mutate) handler finds nothing, logs "failed to get
    namespace labels" and *skips* the policy, while its validate handler refuses the request
    with "failed to create policy context" (or, for a pod by tag, "missing digest"). A pod
    created too early is then judged on a cache race, not on its signature. The probe: a dry
    run of a pod whose image no policy matches is admitted exactly when the cache has it.

    Only Kyverno's own refusals are waited out. Its webhook not answering for
    `REFUSAL_GRACE` raises `WebhookUnavailable` (the run stops); another admission (a webhook,
    a ValidatingAdmissionPolicy, Pod Security) that keeps refusing the probe as long raises
    `EnvironmentNotReady` naming it; a timeout blames Kyverno only if Kyverno refused last.
    """
    pod = k8s_pod("signcheck-namespace-probe", namespace, PROBE_IMAGE, run_id)
    last: list[Denied] = []
    since: list[float] = []

    def persisting() -> bool:
        since[:] = since or [time.monotonic()]
        return time.monotonic() - since[0] >= REFUSAL_GRACE

    def probe() -> bool:
        result = cluster.create(pod, dry_run=True)
        if not isinstance(result, Denied):
            return True
        last[:] = [result]
        who = result.refused_by
        if not (result.webhook_unavailable or who):
            since.clear()
            return False
        if not persisting():
            return False
        if result.webhook_unavailable:
            raise WebhookUnavailable(
                f"namespace {namespace}: the admission webhook {result.webhook} could not be "
                "called (is Kyverno running?) for the namespace check's dry-run pod; no pod "
                "in the run's namespaces can be judged: this says nothing about signatures",
                result.message,
            )
        raise EnvironmentNotReady(
            f"namespace {namespace}: {who} refused the namespace check's dry-run pod "
            f"(image {PROBE_IMAGE}, outside every policy of the run), not Kyverno: "
            f"{_short(result.message)}",
            result.message,
        )

    try:
        until(
            probe,
            what=f"Kyverno to see namespace {namespace} (a dry-run pod outside every policy)",
            timeout=timeout,
            interval=0.02,
            backoff=2.0,
            max_interval=0.5,
            describe=lambda: last[0].message if last else "nothing yet",
        )
    except WebhookUnavailable:
        raise
    except EnvironmentNotReady as err:
        if not last or last[0].by_kyverno or not err.message.startswith("timed out"):
            raise
        # The last refusal was the API server's own (a service account not there yet, a
        # namespace being deleted...): name it instead of Kyverno's namespace cache.
        raise EnvironmentNotReady(
            f"timed out after {timeout:g}s waiting for a dry-run pod in namespace {namespace} "
            f"to be admitted; the last refusal was not Kyverno's: {_short(last[0].message)}",
            err.details,
        ) from None


def _short(message: str, limit: int = 300) -> str:
    flat = " ".join(message.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."

"""Kyverno's own configuration read the way Kyverno v1.19.1 reads it: the `kyverno` ConfigMap
(`pkg/config/config.go`) and the admission controller's command-line flags (`cmd/kyverno`,
`cmd/internal/flag.go`), with the defaults that apply when a key or flag is absent.

Pure functions over plain dicts, so the interpretation is unit-tested without a cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from signcheck.diagnose import selectors

DEFAULT_EXCLUDE_GROUPS = ("system:nodes",)
"""The chart's `config.excludeGroups` (Kyverno's code itself excludes no one)."""

EXCLUSION_KEYS = ("excludeGroups", "excludeUsernames", "excludeRoles", "excludeClusterRoles")

_POD_CONTROLLERS = ("replicaset", "job", "daemon-set", "statefulset")

BROAD: dict[str, tuple[str, ...]] = {
    "excludeGroups": (
        "system:authenticated",
        "system:unauthenticated",
        "system:serviceaccounts",
        "system:serviceaccounts:kube-system",
    ),
    "excludeUsernames": tuple(
        f"system:serviceaccount:kube-system:{c}-controller" for c in _POD_CONTROLLERS
    ),
    "excludeClusterRoles": (
        "system:basic-user",
        "system:discovery",
        "system:public-info-viewer",
        *(f"system:controller:{c}-controller" for c in _POD_CONTROLLERS),
    ),
    "excludeRoles": (),
}
"""Per exclusion key, the names that stand for (nearly) everyone: every authenticated user
(the cluster roles bound to `system:authenticated` by default), or the controllers that create
the pods of Deployments, Jobs, DaemonSets and StatefulSets."""


def system_namespaces(kyverno_namespace: str) -> frozenset[str]:
    """Namespaces the chart's defaults keep from Kyverno (`config.webhooks`,
    `config.resourceFilters`, `excludeKyvernoNamespace`)."""
    return frozenset({"kube-system", "kube-public", "kube-node-lease", kyverno_namespace})


@dataclass
class Exclusion:
    key: str
    excluded: list[str]
    included: list[str]
    """Re-included with `!`: Kyverno checks these first, and they win."""

    @property
    def beyond_default(self) -> list[str]:
        default = DEFAULT_EXCLUDE_GROUPS if self.key == "excludeGroups" else ()
        return [p for p in self.excluded if p not in default]

    def broad(self) -> list[str]:
        """Entries that match everyone or a name standing for most pod creations (and are
        not undone by a re-inclusion of that name)."""
        candidates = BROAD.get(self.key, ())
        return [
            p
            for p in self.beyond_default
            if set(p) == {"*"}
            or any(
                selectors.wildcard(p, c)
                and not any(selectors.wildcard(i, c) for i in self.included)
                for c in candidates
            )
        ]


@dataclass
class FilterEntry:
    """One `resourceFilters` entry that makes Kyverno skip pods."""

    text: str
    namespace: str
    name: str

    @property
    def every_name(self) -> bool:
        # Only stars: every pod name, including the empty one of a `generateName` pod.
        return bool(self.name) and set(self.name) == {"*"}

    def namespaces(self, names: list[str]) -> list[str]:
        return [ns for ns in names if selectors.wildcard(self.namespace, ns)]


@dataclass
class KyvernoConfig:
    data: dict[str, str]
    resource_filters: list[str] = field(default_factory=list)
    pod_filters: list[FilterEntry] = field(default_factory=list)
    webhooks: dict[str, Any] | None = None
    """The `webhooks` key: the namespaceSelector/objectSelector Kyverno puts on its resource
    webhooks (None: not set, the selectors are empty and match everything)."""
    exclusions: dict[str, Exclusion] = field(default_factory=dict)
    match_conditions: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    """Keys Kyverno cannot parse: it logs an error and leaves that setting at its default."""

    def as_facts(self) -> dict[str, Any]:
        return {
            "resourceFilters": self.resource_filters,
            "resourceFilters_on_pods": [f.text for f in self.pod_filters],
            "webhooks": self.webhooks,
            **{
                key: {"excluded": e.excluded, "reincluded": e.included}
                for key, e in self.exclusions.items()
            },
            "matchConditions": self.match_conditions,
            "webhookAnnotations": self.data.get("webhookAnnotations"),
            "webhookLabels": self.data.get("webhookLabels"),
            "generateSuccessEvents": self.data.get("generateSuccessEvents"),
            "defaultRegistry": self.data.get("defaultRegistry"),
            "enableDefaultRegistryMutation": self.data.get("enableDefaultRegistryMutation"),
            "unparseable": self.errors,
        }


def _pod_filter(entry: str, previous: FilterEntry | None) -> FilterEntry | None:
    fields = entry.strip("[]").split(",")
    if len(fields) > 3:
        # Kyverno's parseKinds keeps the previous entry for one it cannot split in three.
        return previous
    kind, namespace, name = [*fields, "", ""][:3]
    # The kind alone decides whether pod creations are hit; namespace and name say which.
    if not selectors.filter_hits_pod(f"[{kind},*,*]", "any", "any"):
        return None
    return FilterEntry(entry, namespace, name)


def _json(conf: KyvernoConfig, key: str, kind: type) -> Any:
    """A JSON-valued key, or None (absent, or recorded in `errors` as Kyverno would log it)."""
    if key not in conf.data:
        return None
    try:
        value = json.loads(conf.data[key])
    except ValueError as err:
        conf.errors[key] = str(err)
        return None
    if not isinstance(value, kind):
        conf.errors[key] = f"not a JSON {kind.__name__}: {conf.data[key][:200]}"
        return None
    return value


def parse(data: dict[str, str] | None) -> KyvernoConfig:
    """Kyverno's reading of its ConfigMap's `data` (None: no ConfigMap, every default)."""
    data = dict(data or {})
    conf = KyvernoConfig(data)
    conf.resource_filters = selectors.resource_filters(data.get("resourceFilters", ""))
    previous: FilterEntry | None = None
    for entry in conf.resource_filters:
        found = _pod_filter(entry, previous)
        if found is not None and found is not previous:
            conf.pod_filters.append(found)
        previous = found
    for key in EXCLUSION_KEYS:
        if key in data:
            excluded, included = selectors.exclusions(data[key])
            conf.exclusions[key] = Exclusion(key, excluded, included)
    webhooks = _json(conf, "webhooks", dict)
    conf.webhooks = webhooks if isinstance(webhooks, dict) else None
    conditions = _json(conf, "matchConditions", list)
    if isinstance(conditions, list):
        conf.match_conditions = [c for c in conditions if isinstance(c, dict)]
    return conf


# -- the admission controller's flags ----------------------------------------------------

FLAG_DEFAULTS: dict[str, str] = {
    "forceFailurePolicyIgnore": "false",
    "imageVerifyCacheEnabled": "true",
    "imageVerifyCacheTTLDuration": "60m",
    "imageVerifyCacheMaxSize": "1000",
    "webhookTimeout": "10",
    "autoUpdateWebhooks": "true",
}
"""Kyverno v1.19.1's defaults for the flags the posture checks read."""

FLAG_ENV = {"forceFailurePolicyIgnore": "FLAG_FORCE_FAILURE_POLICY_IGNORE"}
"""Toggles Kyverno also reads from the environment (`pkg/toggle`): the flag wins if set."""

_BOOL_FLAGS = {"forceFailurePolicyIgnore", "imageVerifyCacheEnabled", "autoUpdateWebhooks"}


def go_bool(text: str) -> bool | None:
    """Go's `strconv.ParseBool`; None for anything else."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def parse_flags(argv: list[str]) -> dict[str, str]:
    """The flags a Go `flag.FlagSet` would see in `argv` (`-x`, `--x`, `--x=v`, `--x v` for
    non-boolean flags): the last occurrence wins, as in Go."""
    out: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            if arg == "--":
                break
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        if not eq:
            if name in _BOOL_FLAGS or i >= len(argv) or argv[i].startswith("-"):
                value = "true"
            else:
                value = argv[i]
                i += 1
        out[name] = value
    return out


@dataclass
class Flags:
    """The admission controller's effective settings, each with where it came from."""

    values: dict[str, str]
    source: dict[str, str]

    def get_bool(self, name: str) -> bool | None:
        return go_bool(self.values.get(name, FLAG_DEFAULTS.get(name, "")))

    def as_facts(self) -> dict[str, Any]:
        return {k: {"value": v, "from": self.source[k]} for k, v in self.values.items()}


def container_flags(container: dict[str, Any]) -> Flags:
    """The posture-relevant flags of Kyverno's container (a Deployment's pod template's)."""
    argv = [str(a) for a in (container.get("command") or [])[1:]]
    argv += [str(a) for a in container.get("args") or []]
    given = parse_flags(argv)
    env = {
        str(e.get("name")): str(e.get("value"))
        for e in container.get("env") or []
        if isinstance(e, dict) and e.get("value") is not None
    }
    values: dict[str, str] = {}
    source: dict[str, str] = {}
    for name, default in FLAG_DEFAULTS.items():
        env_name = FLAG_ENV.get(name)
        if name in given:
            values[name], source[name] = given[name], f"--{name}"
        elif env_name and env_name in env:
            values[name], source[name] = env[env_name], f"env {env_name}"
        else:
            values[name], source[name] = default, "default"
    return Flags(values, source)

"""What a run may do in a cluster: the one list the preflight checks and the in-cluster Job's
ClusterRole grants (`signcheck incluster`), so neither can drift from the other.

Each entry is (verb, API group, resource[/subresource]), cluster-wide: a run makes its own
namespaces, so no narrower scope is known before it starts.
"""

from __future__ import annotations

from collections import defaultdict

RUN_PERMISSIONS: tuple[tuple[str, str, str], ...] = (
    *((v, "", "namespaces") for v in ("create", "delete", "list", "get", "patch", "watch")),
    *((v, "", "pods") for v in ("create", "get", "list", "watch", "patch", "delete")),
    ("get", "", "pods/log"),
    ("patch", "", "pods/ephemeralcontainers"),
    *((v, "", "serviceaccounts") for v in ("get", "create", "list")),
    ("create", "", "serviceaccounts/token"),
    ("list", "", "events"),
    # The run's own Secrets (pull secrets; in Kyverno's namespace too), found by its label.
    *((v, "", "secrets") for v in ("create", "get", "list", "delete")),
    *((v, "", "configmaps") for v in ("get", "list")),
    *((v, "", "nodes") for v in ("get", "list")),
    *((v, "apps", "deployments") for v in ("create", "get", "list", "patch")),
    ("patch", "apps", "deployments/scale"),
    *((v, "apps", "replicasets") for v in ("get", "list")),
    *((v, "apps", r) for r in ("statefulsets", "daemonsets") for v in ("create", "get", "list")),
    *((v, "batch", r) for r in ("jobs", "cronjobs") for v in ("create", "get", "list")),
    *((v, "rbac.authorization.k8s.io", "rolebindings") for v in ("create", "get")),
    ("get", "coordination.k8s.io", "leases"),
    # Kyverno: the run's policies and exceptions (both APIs), reports, how it is installed.
    *(
        (v, "kyverno.io", r)
        for r in ("clusterpolicies", "policies", "policyexceptions")
        for v in ("get", "list", "watch", "create", "update", "patch", "delete")
    ),
    *(
        (v, "policies.kyverno.io", r)
        for r in ("imagevalidatingpolicies", "policyexceptions")
        for v in ("get", "list", "watch", "create", "update", "patch", "delete")
    ),
    ("list", "wgpolicyk8s.io", "policyreports"),
    # A background scan's result before it reaches the PolicyReport (BG-01).
    ("list", "reports.kyverno.io", "ephemeralreports"),
    *(
        (v, "admissionregistration.k8s.io", r)
        for r in (
            "validatingwebhookconfigurations",
            "mutatingwebhookconfigurations",
            "validatingadmissionpolicies",
            "validatingadmissionpolicybindings",
        )
        for v in ("get", "list")
    ),
)
"""What every run does (its tests, evidence, posture checks and removal)."""

INSTALL_PERMISSIONS: tuple[tuple[str, str, str], ...] = (
    ("create", "apiextensions.k8s.io", "customresourcedefinitions"),
    ("create", "rbac.authorization.k8s.io", "clusterroles"),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
    ("create", "apps", "deployments"),
    ("create", "", "secrets"),
    ("create", "", "services"),
    ("delete", "admissionregistration.k8s.io", "validatingwebhookconfigurations"),
    ("delete", "admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
)
"""What installing Kyverno or Policy Reporter with Helm adds (`--kyverno-mode install`)."""


def rules(
    permissions: tuple[tuple[str, str, str], ...] = RUN_PERMISSIONS,
) -> list[dict[str, object]]:
    """ClusterRole rules: one per (group, resource), the verbs used on it."""
    verbs: dict[tuple[str, str], set[str]] = defaultdict(set)
    for verb, group, resource in permissions:
        verbs[(group, resource)].add(verb)
    return [
        {"apiGroups": [group], "resources": [resource], "verbs": sorted(v)}
        for (group, resource), v in sorted(verbs.items())
    ]


def describe(verb: str, group: str, resource: str) -> str:
    """`kubectl auth can-i` words: `create pods`, `patch deployments.apps/scale`."""
    name, _, sub = resource.partition("/")
    return f"{verb} {name}{'.' + group if group else ''}{'/' + sub if sub else ''}"

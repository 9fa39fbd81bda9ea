"""The posture checks' evaluation, without a cluster: Kyverno's reading of its ConfigMap
(resourceFilters, exclusions, webhooks) and of its flags, namespace selectors against
namespaces, which rules cover pods, advisory version ranges, and the checks over a
`ClusterState` shaped like what the API server returns."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from signcheck.clients.k8s import Cluster
from signcheck.diagnose import advisories, kyvernoconf, posture, webhooks
from signcheck.diagnose.clusterstate import ClusterState, image_tag
from signcheck.diagnose.exposure import excluded_requesters, unseen_namespaces
from signcheck.diagnose.posture import CHECKS, failopen, known_advisories, verify_cache

CHART_FILTERS = (
    "[*/*,kyverno,*] [Event,*,*] [*/*,kube-system,*] [*/*,kube-public,*] "
    "[*/*,kube-node-lease,*] [Node,*,*] [Node/?*,*,*] [Binding,*,*] [Pod/binding,*,*] "
    "[ReplicaSet,*,*] [Pod,kyverno,kyverno-admission-controller-*] "
    "[Pod/?*,kyverno,kyverno-admission-controller-*] [ServiceAccount,kyverno,kyverno-x]"
)
"""Entries as Kyverno v1.19.1's chart renders them (`helm template`), abridged."""

NOT_IN_SYSTEM = {
    "matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]},
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kyverno"]},
    ]
}

POD_RULE = {
    "apiGroups": [""],
    "apiVersions": ["v1"],
    "operations": ["CREATE", "UPDATE"],
    "resources": ["pods", "pods/ephemeralcontainers"],
    "scope": "Namespaced",
}


def namespaces(*names: str, **labels: dict[str, str]) -> dict[str, dict[str, str]]:
    # Kubernetes labels every namespace with its own name.
    return {n: {"kubernetes.io/metadata.name": n, **labels.get(n, {})} for n in names}


def webhook_cfg(kind: str, name: str, *hooks: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {"name": name, "labels": {"webhook.kyverno.io/managed-by": "kyverno"}},
        "webhooks": list(hooks),
    }


def hook(name: str, failure: str = "Fail", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "failurePolicy": failure,
        "timeoutSeconds": 10,
        "rules": [POD_RULE],
        "namespaceSelector": NOT_IN_SYSTEM,
        "objectSelector": {},
        "clientConfig": {"service": {"namespace": "kyverno", "name": "kyverno-svc"}},
        **extra,
    }


def state(**kw: Any) -> ClusterState:
    s = ClusterState("kyverno", webhooks_read=True)
    s.namespaces = namespaces("default", "team-a", "kube-system", "kube-public", "kyverno")
    for key, value in kw.items():
        setattr(s, key, value)
    return s


def ids(findings: list[Any]) -> dict[str, Any]:
    return {f.id: f for f in findings}


# -- the ConfigMap -------------------------------------------------------------------------


def test_resource_filters_that_skip_pods_the_way_kyverno_matches_them() -> None:
    conf = kyvernoconf.parse({"resourceFilters": CHART_FILTERS})
    by_text = {f.text: f for f in conf.pod_filters}
    # `*/*` is every kind and subresource; Pod/binding and Pod/?* are subresources only.
    assert list(by_text) == [
        "[*/*,kyverno,*]",
        "[*/*,kube-system,*]",
        "[*/*,kube-public,*]",
        "[*/*,kube-node-lease,*]",
        "[Pod,kyverno,kyverno-admission-controller-*]",
    ]
    assert by_text["[*/*,kube-system,*]"].every_name
    named = by_text["[Pod,kyverno,kyverno-admission-controller-*]"]
    assert not named.every_name and named.namespaces(["kyverno", "default"]) == ["kyverno"]


@pytest.mark.parametrize(
    ("entry", "hits"),
    [
        ("[Pod,*,*]", True),
        ("[v1/Pod,team-a,*]", True),
        ("[*,team-a,*]", True),
        ("[Pod/ephemeralcontainers,*,*]", False),
        ("[apps/v1/Deployment,*,*]", False),
        ("[Event,*,*]", False),
        ("[,team-a,*]", False),
    ],
)
def test_which_entries_hit_pod_creation(entry: str, hits: bool) -> None:
    assert bool(kyvernoconf.parse({"resourceFilters": entry}).pod_filters) is hits


def test_an_entry_of_four_fields_repeats_the_previous_one_as_kyverno_does() -> None:
    conf = kyvernoconf.parse({"resourceFilters": "[Pod,team-a,*][Pod,x,y,z][Event,*,*][a,b,c,d]"})
    assert [f.text for f in conf.pod_filters] == ["[Pod,team-a,*]"]


def test_exclusions_beyond_the_chart_default_and_which_are_broad() -> None:
    conf = kyvernoconf.parse(
        {
            "excludeGroups": "system:nodes, team-x ,system:serviceaccounts:*,"
            "!system:serviceaccounts:kube-system",
            "excludeUsernames": "system:serviceaccount:kube-system:*",
            "excludeClusterRoles": "cluster-admin",
        }
    )
    groups = conf.exclusions["excludeGroups"]
    assert groups.excluded == ["system:nodes", "team-x", "system:serviceaccounts:*"]
    assert groups.included == ["system:serviceaccounts:kube-system"]
    assert groups.beyond_default == ["team-x", "system:serviceaccounts:*"]
    # The re-inclusion of kube-system's service accounts undoes that part, not the rest.
    assert groups.broad() == []
    assert conf.exclusions["excludeUsernames"].broad() == ["system:serviceaccount:kube-system:*"]
    assert conf.exclusions["excludeClusterRoles"].broad() == []
    assert kyvernoconf.parse({"excludeRoles": "*"}).exclusions["excludeRoles"].broad() == ["*"]
    only_default = kyvernoconf.parse({"excludeGroups": "system:nodes"})
    assert only_default.exclusions["excludeGroups"].beyond_default == []


def test_unparseable_keys_are_recorded_and_left_at_their_default() -> None:
    conf = kyvernoconf.parse({"webhooks": "{not json", "matchConditions": '{"a": 1}'})
    assert conf.webhooks is None
    assert set(conf.errors) == {"webhooks", "matchConditions"}
    assert kyvernoconf.parse(None).resource_filters == []


# -- the flags -----------------------------------------------------------------------------


def test_go_flag_syntax_and_last_wins() -> None:
    flags = kyvernoconf.parse_flags(
        [
            "--forceFailurePolicyIgnore",
            "-imageVerifyCacheTTLDuration",
            "10m",
            "--imageVerifyCacheEnabled=false",
            "--imageVerifyCacheEnabled=true",
            "positional",
        ]
    )
    assert flags == {
        "forceFailurePolicyIgnore": "true",
        "imageVerifyCacheTTLDuration": "10m",
        "imageVerifyCacheEnabled": "true",
    }


def test_container_flags_defaults_env_and_flag_precedence() -> None:
    env = [{"name": "FLAG_FORCE_FAILURE_POLICY_IGNORE", "value": "true"}]
    from_env = kyvernoconf.container_flags({"args": [], "env": env})
    assert from_env.get_bool("forceFailurePolicyIgnore") is True
    assert from_env.source["forceFailurePolicyIgnore"] == "env FLAG_FORCE_FAILURE_POLICY_IGNORE"
    assert from_env.values["imageVerifyCacheTTLDuration"] == "60m"
    assert from_env.source["imageVerifyCacheEnabled"] == "default"
    flag_wins = kyvernoconf.container_flags(
        {"args": ["--forceFailurePolicyIgnore=false"], "env": env}
    )
    assert flag_wins.get_bool("forceFailurePolicyIgnore") is False
    assert kyvernoconf.go_bool("yes") is None


# -- selectors, rules, versions ------------------------------------------------------------


def test_namespace_selectors_against_namespaces() -> None:
    spaces = namespaces("default", "team-a", "kube-system", "kyverno", team_a={"env": "prod"})
    spaces["team-a"]["env"] = "prod"
    assert webhooks.unselected(NOT_IN_SYSTEM, spaces) == ["kube-system", "kyverno"]
    assert webhooks.unselected({"matchLabels": {"env": "prod"}}, spaces) == [
        "default",
        "kube-system",
        "kyverno",
    ]
    exists = {"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}
    assert webhooks.unselected(exists, spaces) == ["team-a"]
    assert webhooks.unselected({}, spaces) == []


@pytest.mark.parametrize(
    ("rule", "covers"),
    [
        (POD_RULE, True),
        ({**POD_RULE, "apiGroups": ["*"], "resources": ["*"], "operations": ["*"]}, True),
        ({**POD_RULE, "resources": ["pods/exec"]}, False),
        ({**POD_RULE, "operations": ["DELETE"]}, False),
        ({**POD_RULE, "apiGroups": ["apps"]}, False),
        ({**POD_RULE, "apiVersions": ["v2"]}, False),
    ],
)
def test_rules_that_cover_pods(rule: dict[str, Any], covers: bool) -> None:
    assert webhooks.covers_pods([rule]) is covers


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("v1.19.1", {"GHSA-2r43-6962-xcw5"}),
        ("1.19.2", set()),
        ("v1.18.0", {"GHSA-2r43-6962-xcw5"}),
        ("v1.17.9", set()),
        ("v1.13.4", {"GHSA-46mp-8w32-6g94"}),
        ("v1.14.0-alpha.1", set()),
        ("v1.14.0-0", {"GHSA-46mp-8w32-6g94"}),
        ("v1.8.4", {"GHSA-m3cq-xcx9-3gvm", "GHSA-3hfq-cx9j-923w"}),
        ("v1.10.5", set()),
    ],
)
def test_advisory_ranges(version: str, expected: set[str]) -> None:
    hits = advisories.affecting(version)
    assert hits is not None and {a.id for a in hits} == expected


def test_versions_order_and_what_is_no_version() -> None:
    key = advisories.version_key
    assert key("v1.14.0-alpha.1") < key("v1.14.0-alpha.2") < key("v1.14.0-rc.1") < key("1.14.0")  # type: ignore[operator]
    assert key("latest") is None and advisories.affecting("main") is None
    assert image_tag("127.0.0.1:5000/kyverno/kyverno:v1.19.1@sha256:ab") == "v1.19.1"
    assert image_tag("127.0.0.1:5000/kyverno/kyverno") is None


# -- the checks over a cluster's state -----------------------------------------------------


def test_a_healthy_chart_default_cluster_has_only_info() -> None:
    s = state(
        kyverno_configs=[
            webhook_cfg(
                "MutatingWebhookConfiguration",
                "kyverno-resource-mutating-webhook-cfg",
                hook("mutate.kyverno.svc-fail"),
            )
        ],
        config=kyvernoconf.parse(
            {"resourceFilters": CHART_FILTERS, "excludeGroups": "system:nodes"}
        ),
    )
    findings = [f for check in CHECKS for f in check(s)]
    assert {f.severity for f in findings} == {"info"}
    system = ids(findings)["POSTURE-SYSTEM-NAMESPACES"]
    assert "kube-public, kube-system, kyverno" in system.title
    assert "kube-system: resourceFilters entry [*/*,kube-system,*]" in system.evidence


def test_unseen_namespaces_object_selector_and_name_filters_are_high() -> None:
    selector = {"matchLabels": {"env": "prod"}}
    s = state(
        kyverno_configs=[
            webhook_cfg(
                "MutatingWebhookConfiguration",
                "cfg",
                hook("mutate.kyverno.svc-fail", namespaceSelector=selector),
                hook("x", objectSelector={"matchLabels": {"verify": "yes"}}),
            )
        ],
        config=kyvernoconf.parse(
            {
                "resourceFilters": "[Pod,team-*,debug-*]",
                "webhooks": json.dumps({"namespaceSelector": selector}),
            }
        ),
    )
    s.namespaces = namespaces("default", "team-a", "kube-system", team_a={})
    s.namespaces["team-a"]["env"] = "prod"
    found = ids(unseen_namespaces(s))
    assert found["POSTURE-UNSEEN-NAMESPACES"].title.startswith(
        "Kyverno never sees pods in namespace default:"
    )
    assert found["POSTURE-OBJECT-SELECTOR"].severity == "high"
    assert "[Pod,team-*,debug-*] (namespaces team-a)" in found["POSTURE-RESOURCEFILTER-PODS"].title


def test_a_policy_scoped_webhook_is_not_blindness() -> None:
    """An ImageValidatingPolicy's fine-grained webhook selects only its policy's namespaces:
    the namespaces outside it are outside that policy, not unseen by Kyverno."""
    scoped = {"matchLabels": {"team": "a"}}
    s = state(
        kyverno_configs=[
            webhook_cfg(
                "MutatingWebhookConfiguration",
                "kyverno-resource-mutating-webhook-cfg",
                hook("ivpol.mutate.kyverno.svc-fail-finegrained-p", namespaceSelector=scoped),
            )
        ],
        config=kyvernoconf.parse({}),
    )
    s.namespaces = namespaces("default", "team-a")
    assert "POSTURE-UNSEEN-NAMESPACES" not in ids(unseen_namespaces(s))


def test_without_live_pod_webhooks_the_configmap_selector_is_judged() -> None:
    conf = kyvernoconf.parse({"webhooks": '{"namespaceSelector": {"matchLabels": {"a": "b"}}}'})
    found = ids(unseen_namespaces(state(config=conf)))
    assert "ConfigMap kyverno's `webhooks`" in found["POSTURE-UNSEEN-NAMESPACES"].evidence
    assert "POSTURE-NO-POD-WEBHOOK" in ids(failopen(state(config=conf)))


def test_excluded_requesters_severity() -> None:
    named = state(config=kyvernoconf.parse({"excludeUsernames": "alice"}))
    assert excluded_requesters(named)[0].severity == "medium"
    everyone = state(
        config=kyvernoconf.parse({"excludeGroups": "system:nodes,system:authenticated"})
    )
    (finding,) = excluded_requesters(everyone)
    assert finding.severity == "high" and "system:authenticated" in finding.title
    assert (
        excluded_requesters(state(config=kyvernoconf.parse({"excludeGroups": "system:nodes"})))
        == []
    )


def test_cache_and_advisory_follow_the_flags() -> None:
    on = kyvernoconf.container_flags({"args": ["--imageVerifyCacheTTLDuration=0"]})
    cached = state(flags=on, version="v1.19.1", version_source="test")
    (cache,) = verify_cache(cached)
    assert cache.severity == "medium" and "up to 60m" in cache.title  # 0 means the default
    assert ids(known_advisories(cached))["POSTURE-ADVISORY-GHSA-2r43-6962-xcw5"].severity == "high"
    off = kyvernoconf.container_flags({"args": ["--imageVerifyCacheEnabled=false"]})
    uncached = state(flags=off, version="v1.19.1", version_source="test")
    assert verify_cache(uncached) == []
    mitigated = ids(known_advisories(uncached))["POSTURE-ADVISORY-GHSA-2r43-6962-xcw5"]
    assert mitigated.severity == "info" and "mitigated here" in mitigated.title
    # Flags not readable (Kyverno out of cluster): a fact, not a finding.
    assert verify_cache(state(version="v1.19.1")) == []
    assert ids(known_advisories(state()))["POSTURE-VERSION-UNKNOWN"].severity == "info"


def test_an_api_server_that_does_not_answer_gives_info_not_an_exception(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on once this closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "none"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    kubeconfig = tmp_path / "closed.yaml"
    kubeconfig.write_text(yaml.safe_dump(config))
    findings, facts = posture.check(Cluster(kubeconfig), "kyverno")
    assert {f.severity for f in findings} == {"info"}
    found = ids(findings)
    assert "Connection refused" in found["POSTURE-UNREADABLE"].evidence
    assert "namespaces" in facts["unreadable"] and facts["namespaces"] is None
    assert "POSTURE-CHECK-ERROR" not in found and "POSTURE-NO-POD-WEBHOOK" not in found

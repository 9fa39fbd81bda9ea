"""Pull secrets on the pod: a workload that pulls from the private registry brings its own
`imagePullSecrets` (a dockerconfigjson Secret in its namespace), as the kubelet needs.

Kyverno v1.19.1 (`pkg/engine/factories/registryclientfactory.go`, `cmd/internal/registry.go`):
a ClusterPolicy rule without `imageRegistryCredentials` reads the registry with the pod's
pull secrets *instead of* Kyverno's own, and looks secrets up through informers only for its
own namespace and the namespaces its `--imagePullSecrets` name: a secret in the pod's
namespace is "not found, skipping", and the registry answers UNAUTHORIZED. With
`imageRegistryCredentials.secrets` on the rule, Kyverno's own secret is used beside the pod's.
An ImageValidatingPolicy never reads the pod's pull secrets (it uses its `credentials`, else
Kyverno's own).
"""

from __future__ import annotations

from typing import Any

import pytest

from fixtures.types import Admit, MakeNamespace, PolicyOf
from signcheck.clients import admission, k8s, pullsecret
from signcheck.clients.k8s import Cluster
from signcheck.kyverno.versions import IVPOL_BEFORE_1_19
from signcheck.run.resources import Images
from signcheck.run.scenarios import MAIN, PULL_SECRET, Scenarios
from signcheck.suite import expect
from signcheck.target import Target
from signcheck.verdict.observe import observe

SECRET = "app-pull"
POD_SECRETS_IGNORED = "https://github.com/kyverno/kyverno/issues/17257"
FIX_PROPOSED = "https://github.com/kyverno/kyverno/pull/17259"


def _require_private(scenarios: Scenarios) -> None:
    if not scenarios.registry_requires_auth:
        pytest.skip(
            "the target's registry accepts anonymous pulls; pull secrets matter only for one "
            "that requires credentials (the local target's does)"
        )


def _with_pull_secret(ns: str, name: str, image: str, target: Target) -> dict[str, Any]:
    pod = k8s.pod(name, ns, image, target.run_id)
    pod["spec"]["imagePullSecrets"] = [{"name": SECRET}]
    return pod


def _namespace_with_secret(
    make_namespace: MakeNamespace, variant: str, cluster: Cluster, images: Images, target: Target
) -> str:
    """A namespace of `variant` holding the pod's pull secret, proven to let a puller in."""
    ns = make_namespace(variant)
    secret = pullsecret.secret(SECRET, ns, target.registry, target.run_id)
    created = cluster.create(secret)
    assert isinstance(created, admission.Admitted), f"the pull secret was refused: {created}"
    config = pullsecret.docker_config(target.registry)
    status = pullsecret.pull_status(target.registry, config, images.signed)
    assert status == 200, f"the pull secret's credentials got {status} from the registry"
    return ns


@pytest.mark.scenario(
    "PULL-01",
    step="A signed pod that brings imagePullSecrets: a valid dockerconfigjson Secret for the "
    "private registry in the pod's own namespace",
    expect="admitted and pinned: an ImageValidatingPolicy does not read the pod's pull "
    "secrets and verifies with Kyverno's own credentials; the unsigned image with the same "
    "secret denied: no verified signature (a signature verdict)",
    versions=IVPOL_BEFORE_1_19,
)
@pytest.mark.parametrize(
    "api",
    [
        pytest.param(
            "cpol",
            marks=pytest.mark.expect(
                "the signed pod DENIED by mutate.kyverno.svc-fail, policy and rule "
                "check-image: UNAUTHORIZED (failed to update digest: ... authentication "
                "required), and the unsigned one too (no signature verdict at all): with pull "
                "secrets on the pod, a rule without imageRegistryCredentials reads the "
                "registry with those only, which Kyverno looks up only in its own and its "
                "--imagePullSecrets namespaces; the same signed pod without imagePullSecrets "
                "admitted beside it. Reported as an INFO finding (kyverno#17257), never as a "
                "pass"
            ),
        ),
        "ivpol",
    ],
)
def test_pull_secret_on_the_pod(
    api: str,
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    scenarios: Scenarios,
    cluster: Cluster,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """A pod's own pull secret is how a team without access to Kyverno's namespace pulls
    from a private registry: a signed image it brings must be judged on its signature."""
    _require_private(scenarios)
    variant = MAIN if api == "cpol" else "ivpol"
    policy = policy_of(variant)
    ns = _namespace_with_secret(make_namespace, variant, cluster, images, target)
    signed, unsigned = images.signed, images.unsigned
    # Control: the same signed image, without pull secrets, in the same namespace.
    expect.verified(
        admit(k8s.pod("no-pull-secret", ns, signed.by_tag, target.run_id)),
        "the signed pod without imagePullSecrets",
        signed,
        api,
    )
    result = admit(_with_pull_secret(ns, "signed", signed.by_tag, target), signed.by_tag)
    if api == "cpol" and isinstance(result, admission.Denied) and result.registry_error:
        denial = expect.environment_problem(result, "the signed pod with imagePullSecrets")
        assert (denial.webhook, denial.policy, denial.rule) == (
            expect.WEBHOOK,
            policy.name,
            policy.rule,
        ), denial
        assert "UNAUTHORIZED" in (denial.reason or ""), denial.reason
        also = admit(_with_pull_secret(ns, "unsigned", unsigned.by_tag, target), unsigned.by_tag)
        unjudged = expect.environment_problem(also, "the unsigned pod with imagePullSecrets")
        assert "UNAUTHORIZED" in (unjudged.reason or ""), unjudged.reason
        observe(
            "PULL-01.cpol",
            "a signed pod that brings its own imagePullSecrets is refused UNAUTHORIZED: a "
            "ClusterPolicy rule without imageRegistryCredentials reads the registry with the "
            "pod's pull secrets only, and Kyverno finds secrets only in its own namespace and "
            "the namespaces of its --imagePullSecrets",
            "info",
            f"name Kyverno's own pull secret on every verifyImages rule "
            f"(`imageRegistryCredentials.secrets: [{PULL_SECRET}]`, PULL-02), or move to an "
            f"ImageValidatingPolicy (PULL-01.ivpol); fix proposed upstream in {FIX_PROPOSED}",
            reference=POD_SECRETS_IGNORED,
            evidence=f"{denial.webhook} denied the signed pod: {denial.reason}; the unsigned "
            f"pod with the same secret got no signature verdict either ({unjudged.reason}); "
            "the same signed pod without imagePullSecrets was admitted",
        )
    expect.verified(result, "the signed pod with imagePullSecrets", signed, api)
    denial = expect.denied_unsigned(
        admit(_with_pull_secret(ns, "unsigned", unsigned.by_tag, target), unsigned.by_tag),
        "the unsigned pod with imagePullSecrets",
        policy,
        image=unsigned.by_tag if api == "cpol" else f"{unsigned.by_tag}@{unsigned.digest}",
    )
    assert denial.verdict == "signature", denial.verdict


@pytest.mark.scenario(
    "PULL-02",
    step="The same pods under a ClusterPolicy whose rule names Kyverno's own pull secret "
    "(imageRegistryCredentials.secrets: [regcred])",
    expect="the signed pod with imagePullSecrets admitted and pinned; the unsigned one denied: "
    "no signatures found (a signature verdict, not UNAUTHORIZED)",
)
def test_rule_credentials_beside_pod_secrets(
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    scenarios: Scenarios,
    cluster: Cluster,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """The remedy for PULL-01.cpol: credentials named on the rule are used beside the pod's
    own, so the pod's pull secret no longer takes Kyverno's away."""
    _require_private(scenarios)
    variant = "pull-creds"
    policy = policy_of(variant)
    ns = _namespace_with_secret(make_namespace, variant, cluster, images, target)
    signed, unsigned = images.signed, images.unsigned
    expect.verified(
        admit(_with_pull_secret(ns, "signed", signed.by_tag, target), signed.by_tag),
        "the signed pod with imagePullSecrets",
        signed,
        "cpol",
    )
    denial = expect.denied_unsigned(
        admit(_with_pull_secret(ns, "unsigned", unsigned.by_tag, target), unsigned.by_tag),
        "the unsigned pod with imagePullSecrets",
        policy,
        image=unsigned.by_tag,
    )
    assert denial.verdict == "signature", denial.verdict

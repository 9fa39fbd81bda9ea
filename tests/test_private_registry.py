"""Private registry: the registry requires credentials, and Kyverno reads them from an image
pull secret (the seed's `imagePullSecrets.regcred`). Without credentials the denial is a
registry error, which the suite reports as an environment problem, never as a verdict on
the image's signature."""

from __future__ import annotations

import base64
import json

import pytest
import requests

from fixtures.types import Admit, MakeNamespace, PolicyOf
from signcheck.clients import k8s, oci
from signcheck.clients.k8s import Cluster
from signcheck.errors import EnvironmentNotReady
from signcheck.kyverno.versions import IVPOL_BEFORE_1_19
from signcheck.run.resources import Images
from signcheck.run.scenarios import MAIN, Scenarios
from signcheck.suite import expect
from signcheck.target import Target

API = pytest.mark.parametrize("api", ["cpol", "ivpol"])


def _require_private(scenarios: Scenarios) -> None:
    if not scenarios.registry_requires_auth:
        pytest.skip(
            "the target's registry accepts anonymous pulls; these scenarios need one that "
            "requires credentials (the local target's does)"
        )


def _pull_secret_hosts(cluster: Cluster, namespace: str) -> dict[str, list[str]]:
    """Registry hosts each dockerconfigjson Secret in Kyverno's namespace has credentials for."""
    found: dict[str, list[str]] = {}
    for secret in cluster.core.list_namespaced_secret(namespace).items:
        if (
            secret.type != "kubernetes.io/dockerconfigjson"
            or not secret.data
            or not secret.metadata
        ):
            continue
        config = json.loads(base64.b64decode(secret.data.get(".dockerconfigjson", "")) or b"{}")
        found[str(secret.metadata.name)] = sorted(str(h) for h in (config.get("auths") or {}))
    return found


@pytest.mark.scenario(
    "PRIV-01",
    step="A registry that requires credentials; Kyverno's come from its image pull secret",
    expect="an anonymous pull is refused (401); the signed image admitted and pinned (Kyverno "
    "read it with the secret's credentials); the unsigned image denied: no signatures found "
    "(a signature verdict, not a registry error)",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_credentials_from_pull_secret(
    api: str,
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    scenarios: Scenarios,
    cluster: Cluster,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """Signature checks work against a private registry the way the seed sets it up."""
    _require_private(scenarios)
    reg = target.registry
    signed, unsigned = images.signed, images.unsigned
    _, path = oci.split_repository(signed.repository)
    anonymous = requests.get(
        f"{reg.scheme}://{reg.host}/v2/{path}/manifests/{signed.tag}",
        headers={"Accept": oci.ACCEPT},
        timeout=10,
        verify=str(reg.ca_file) if reg.ca_file else True,
    )
    assert anonymous.status_code == 401, f"anonymous pull answered {anonymous.status_code}"
    secrets = _pull_secret_hosts(cluster, target.kyverno_namespace)
    assert any(reg.host in hosts for hosts in secrets.values()), (
        f"no image pull secret in {target.kyverno_namespace} holds credentials for "
        f"{reg.host}: {secrets}"
    )
    variant = MAIN if api == "cpol" else "ivpol"
    ns = make_namespace(variant)
    expect.verified(
        admit(k8s.pod("signed", ns, signed.by_tag, target.run_id)), "signed", signed, api
    )
    denial = expect.denied_unsigned(
        admit(k8s.pod("unsigned", ns, unsigned.by_tag, target.run_id), unsigned.by_tag),
        "the unsigned image",
        policy_of(variant),
        image=unsigned.by_tag,
    )
    assert denial.verdict == "signature", denial.verdict


@pytest.mark.scenario(
    "PRIV-02",
    step="The same registry with a policy that gives Kyverno no credentials",
    expect="the signed image denied with the registry's error (UNAUTHORIZED: authentication "
    "required), classified as an environment problem (verdict 'environment: registry'), "
    "never as a signature verdict; the same image admitted where Kyverno has credentials",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_no_credentials_is_an_environment_problem(
    api: str,
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    scenarios: Scenarios,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """A red run says exactly what is wrong: missing credentials are not blamed on the
    image."""
    _require_private(scenarios)
    signed = images.signed
    variant = "nocreds" if api == "cpol" else "ivpol-nocreds"
    control_ns = make_namespace(MAIN if api == "cpol" else "ivpol")
    expect.verified(
        admit(k8s.pod("with-credentials", control_ns, signed.by_tag, target.run_id)),
        "the signed image where Kyverno has credentials",
        signed,
        api,
    )
    ns = make_namespace(variant)
    result = admit(k8s.pod("without-credentials", ns, signed.by_tag, target.run_id), signed.by_tag)
    denial = expect.environment_problem(result, "the signed image without credentials")
    assert denial.policy == policy_of(variant).name, denial
    assert "UNAUTHORIZED" in (denial.reason or ""), denial.reason
    assert denial.verdict == "environment: registry"
    # What any other scenario would say if it met this denial: an environment problem.
    with pytest.raises(EnvironmentNotReady, match="could not read the registry"):
        expect.denied_unsigned(
            result,
            "the signed image without credentials",
            policy_of(variant),
            image=signed.by_tag,
        )

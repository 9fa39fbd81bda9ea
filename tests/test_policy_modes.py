"""Policy modes and APIs: Audit instead of Enforce, and the seed's policy as an
ImageValidatingPolicy (Kyverno's successor API)."""

from __future__ import annotations

import pytest

from fixtures.types import Admit, MakeNamespace, PolicyOf
from signcheck.clients import k8s
from signcheck.clients.k8s import Cluster
from signcheck.kyverno import cpol, ivpol, policyreports
from signcheck.kyverno.versions import IVPOL_BEFORE_1_19
from signcheck.run.resources import Images, SessionState
from signcheck.run.scenarios import Scenarios
from signcheck.suite import expect
from signcheck.suite.session import SigncheckRun
from signcheck.suite.stash import ADMISSIONS, NAMESPACE
from signcheck.target import Target


@pytest.mark.scenario(
    "MODE-01",
    step="The seed's policy in Audit instead of Enforce: run a signed and an unsigned pod",
    expect="both admitted (unsigned recorded as fail in kyverno.io/verify-images); the "
    "PolicyReport says fail for the rule (failed to verify image <ref>: ... no signatures "
    "found, or unverified image <ref>), pass for the signed pod",
)
@pytest.mark.late
def test_audit_admits_and_reports(
    request: pytest.FixtureRequest,
    scenarios: Scenarios,
    images: Images,
    cluster: Cluster,
    policy_of: PolicyOf,
    signcheck_run: SigncheckRun,
) -> None:
    """Audit never blocks: it only reports. The pods were created when the run started (the
    reports controller aggregates after a fixed delay, spent on other tests meanwhile)."""
    if scenarios.audit_namespace is None:
        pytest.skip("--seed-exact-policy: the Audit variant is not applied")
    ns = scenarios.audit_namespace
    request.node.stash[NAMESPACE] = ns
    pods = scenarios.audit_pods
    request.node.stash[ADMISSIONS] = list(pods.values())
    policy = policy_of("audit")
    for role in ("signed", "unsigned"):
        assert pods[role]["admitted"], f"the {role} pod was denied under Audit: {pods[role]}"
        image = getattr(images, role).by_tag
        want = {image: "pass" if role == "signed" else "fail"}
        what = f"the {role} pod (Audit)"
        expect.record(pods[role]["annotations"] or {}, expect.VERIFY_ANNOTATION, what, want)
    timeout = signcheck_run.settings.timeouts.policy_report
    failed, passed = (
        policyreports.wait_for_result(cluster, ns, policy.name, f"Pod/{pod}", timeout)
        for pod in ("unsigned", "signed")
    )
    assert (failed.rule, failed.result) == (policy.rule, "fail"), failed
    unsigned = images.unsigned.by_tag
    # Kyverno judges the pod twice (the mutate webhook verifies the signature, the validate
    # webhook checks `required`) and the report keeps whichever result it aggregated last:
    # both name the image as failed.
    assert failed.message in (
        f"failed to verify image {unsigned}: .attestors[0].entries[0].keys: no signatures found",
        f"unverified image {unsigned}",
    ), failed
    assert (passed.rule, passed.result) == (policy.rule, "pass"), passed


@pytest.mark.scenario(
    "MODE-02",
    step="The seed's policy as an ImageValidatingPolicy (policies.kyverno.io/v1)",
    expect="Ready with the seed's choices (Deny, Fail, 30 s, the key, tlog/SCT ignored, no "
    "background) and autogen for pod controllers; signed admitted and pinned; unsigned and "
    "other-key denied by ivpol.validate.kyverno.svc-fail-finegrained-<policy>: "
    "Policy <policy> failed: no verified signature for <image>",
    versions=IVPOL_BEFORE_1_19,
)
def test_image_validating_policy_twin(
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    cluster: Cluster,
    run_state: SessionState,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """Clusters on Kyverno's successor API are held to the same promise."""
    policy = policy_of("ivpol")
    live = cpol.Policies(cluster, cpol.IMAGE_VALIDATING_POLICY).get(policy.name)
    assert live is not None and cpol.ivpol_is_ready(live), live and live.get("status")
    cosign = "spec.attestors.0.cosign"
    expect.fields(
        live,
        {
            "spec.validationActions": ["Deny"],
            "spec.failurePolicy": "Fail",
            "spec.webhookConfiguration.timeoutSeconds": 30,
            "spec.evaluation.background.enabled": False,
            f"{cosign}.ctlog": {"insecureIgnoreTlog": True, "insecureIgnoreSCT": True},
        },
        f"ImageValidatingPolicy {policy.name}",
    )
    key = str(expect.field(live, f"{cosign}.key.data")).strip()
    assert key == run_state.public_key.read_text().strip(), (
        f"ImageValidatingPolicy {policy.name} does not hold the run's public key: {key!r}"
    )
    autogen = (live.get("status") or {}).get("autogen", {}).get("configs", {})
    assert {"defaults", "cronjobs"} <= set(autogen), f"no autogen for pod controllers: {autogen}"

    ns = make_namespace("ivpol")
    signed = images.signed
    expect.verified(
        admit(k8s.pod("signed", ns, signed.by_tag, target.run_id)), "signed", signed, "ivpol"
    )
    for role in ("unsigned", "otherkey"):
        image = getattr(images, role)
        denial = expect.denied_by(
            admit(k8s.pod(role, ns, image.by_tag, target.run_id), image.by_tag),
            f"the {role} image",
            policy,
            image=f"{image.by_tag}@{image.digest}",
            reason=ivpol.MESSAGE,
        )
        assert denial.normalised.endswith(
            f"Policy {policy.name} failed: {ivpol.MESSAGE}{image.by_tag}@{image.digest}"
        ), denial.message

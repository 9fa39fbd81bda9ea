"""Attestations: an image admitted only when a vulnerability-scan attestation signed by the
run's key says the scan found no critical vulnerability and is recent. Every ATT image is
signed with the run's key; the session's signing batch attests four of them with
`cosign attest --type vuln` (legacy `.att` tags, no transparency log: offline)
(`signcheck.kyverno.attestations`, `signcheck.run.attesting.ATTESTED`). Each case runs against
a ClusterPolicy whose rule also has `attestations` (`attest`) and its ImageValidatingPolicy twin
(`ivpol-attest`, `verifyAttestationSignatures` and `extractPayload`), each denial beside the
attested, compliant image admitted in the same namespace.

Kyverno v1.19.1's ImageValidatingPolicy verifies no attestation made without a transparency
log whatever its attestor's `insecureIgnoreTlog` says (kyverno#17109: "cosign bundle
verification failed" in its log), so it refuses the compliant image too: ATT-01.ivpol reports
that as a finding and the twin's negative cases cannot be judged beside a refused control.

Every case asks admission only: server-side dry runs (the same webhooks and verification,
nothing stored) in the module's one namespace per policy (`shared_namespace`).
"""

from __future__ import annotations

from typing import Any

import pytest

from fixtures.types import Admit, MakeNamespace, PolicyOf
from signcheck.artefacts import forge
from signcheck.clients import admission, k8s, oci
from signcheck.clients.admission import Admission
from signcheck.kyverno import attestations, ivpol
from signcheck.kyverno.versions import IVPOL_BEFORE_1_19
from signcheck.run.scenarios import Scenarios
from signcheck.suite import expect
from signcheck.target import Target
from signcheck.verdict.observe import observe

API = pytest.mark.parametrize("api", ["cpol", "ivpol"])
VARIANT = {"cpol": "attest", "ivpol": "ivpol-attest"}
OFFLINE_ATTESTATIONS = "https://github.com/kyverno/kyverno/issues/17109"
FIX = "https://github.com/kyverno/kyverno/pull/17217"
CPOL_FAILED = "image attestations verification failed, verifiedCount: 0, requiredCount: 1, "


def _admit(admit: Admit, ns: str, role: str, image: oci.PushedImage, target: Target) -> Admission:
    return admit(k8s.pod(role, ns, image.by_tag, target.run_id), dry_run=True)


def _named(api: str, image: oci.PushedImage) -> str:
    # A ClusterPolicy names the digest it verified, an ImageValidatingPolicy the pinned tag.
    return image.by_digest if api == "cpol" else f"{image.by_tag}@{image.digest}"


def _refused_offline(result: Admission, image: oci.PushedImage) -> bool:
    """The ImageValidatingPolicy's refusal of an attested image whose signature verified:
    kyverno#17109, not a verdict on the attestation."""
    return (
        isinstance(result, admission.Denied)
        and (result.reason or "").startswith(attestations.IVPOL_UNATTESTED)
        and not (result.reason or "").startswith(ivpol.MESSAGE)
        and f"{image.by_tag}@{image.digest}" in (result.reason or "")
    )


def _control(api: str, ns: str, admit: Admit, scenarios: Scenarios, target: Target) -> None:
    """The attested, compliant image admitted in `ns`: without it a denial proves nothing."""
    compliant = scenarios.images["att-compliant"]
    result = _admit(admit, ns, "compliant", compliant, target)
    if api == "ivpol" and _refused_offline(result, compliant):
        assert isinstance(result, admission.Denied)
        pytest.skip(
            "cannot judge: the ImageValidatingPolicy refuses the attested, compliant control "
            f"image too (kyverno#17109, reported as ATT-01.ivpol): {result.reason}"
        )
    expect.verified(result, "the attested, compliant image (control)", compliant, api)


@pytest.mark.scenario(
    "ATT-01",
    step="Run a signed image attested by the run's key: vuln scan, no critical finding, "
    "finished now",
    expect="admitted, pinned to its digest, the pass recorded (cpol). ivpol on Kyverno "
    "1.19.1: refused 'no verified vuln attestation' (kyverno#17109: an attestation without a "
    "transparency log never verifies), an INFO finding, never a pass",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_attested_and_compliant_admitted(
    api: str,
    shared_namespace: MakeNamespace,
    admit: Admit,
    scenarios: Scenarios,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """The control of every other ATT case: a policy that requires an attestation admits the
    image that has a good one."""
    ns = shared_namespace(VARIANT[api])
    compliant = scenarios.images["att-compliant"]
    result = _admit(admit, ns, "compliant", compliant, target)
    if api == "ivpol" and _refused_offline(result, compliant):
        assert isinstance(result, admission.Denied)
        policy = policy_of(VARIANT[api])
        expect.denied_by(
            result,
            "the attested, compliant image",
            policy,
            image=_named(api, compliant),
            reason=attestations.IVPOL_UNATTESTED,
        )
        observe(
            "ATT-01.ivpol",
            "an image attested without a transparency log is refused by an "
            "ImageValidatingPolicy whatever its attestor's insecureIgnoreTlog says: its "
            "attestation path never verifies such an attestation, so requiring attestations "
            "refuses every image, compliant or not",
            "info",
            "require attestations with a ClusterPolicy verifyImages rule (ATT-01.cpol admits "
            f"the same image) until the fix ({FIX}) is released, or attest with a "
            "transparency log (Rekor) the cluster can reach",
            reference=OFFLINE_ATTESTATIONS,
            evidence=f"{result.webhook}: {result.reason}; its signature verified (the "
            "policy's signature check passed)",
        )
        return
    expect.verified(result, "the attested, compliant image", compliant, api)


DENIALS = {
    # case: (image role, cpol reason, ivpol reason, whether a ClusterPolicy names the image)
    "missing": ("att-missing", CPOL_FAILED + "error: no matching attestations", None, False),
    "critical": ("att-critical", CPOL_FAILED + "error: ", attestations.IVPOL_CRITICAL, True),
    "otherkey": (
        "att-otherkey",
        CPOL_FAILED + "error: no matching attestations: accepted signatures do not match",
        None,
        False,
    ),
    "stale": ("att-stale", CPOL_FAILED + "error: ", attestations.IVPOL_STALE, True),
    "tampered": (
        "att-tampered",
        CPOL_FAILED + "error: no matching attestations: accepted signatures do not match",
        None,
        False,
    ),
}


def _denied(
    case: str,
    api: str,
    ns: str,
    admit: Admit,
    scenarios: Scenarios,
    policy_of: PolicyOf,
    target: Target,
    condition: str | None = None,
) -> None:
    role, cpol_reason, ivpol_reason, named = DENIALS[case]
    _control(api, ns, admit, scenarios, target)
    image = scenarios.images[role]
    result = _admit(admit, ns, case, image, target)
    reason = cpol_reason if api == "cpol" else ivpol_reason or attestations.IVPOL_UNATTESTED
    denial = expect.denied_by(
        result,
        f"the signed image with {case} attestation",
        policy_of(VARIANT[api]),
        image=_named(api, image) if named or api == "ivpol" else None,
        reason=reason,
    )
    assert denial.verdict == "signature", denial.verdict
    if condition and api == "cpol":
        # Which of the predicate's conditions refused it, in the rule's own words.
        assert (denial.reason or "").endswith(condition), denial.reason


@pytest.mark.scenario(
    "ATT-02",
    step="Run a signed image that has no attestation",
    expect="denied: 'image attestations verification failed, verifiedCount: 0, "
    "requiredCount: 1, error: no matching attestations' (cpol) / 'no verified vuln "
    "attestation for <image>' (ivpol), beside the attested image admitted",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_attestation_missing_denied(
    api: str,
    shared_namespace: MakeNamespace,
    admit: Admit,
    scenarios: Scenarios,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """A signature alone does not satisfy a policy that requires an attestation."""
    ns = shared_namespace(VARIANT[api])
    _denied("missing", api, ns, admit, scenarios, policy_of, target)


@pytest.mark.scenario(
    "ATT-03",
    step="Run a signed image whose attestation (by the run's key) reports 2 critical "
    "vulnerabilities",
    expect="denied by the predicate's condition: '... attestation checks failed for "
    f"<image> and predicate {attestations.VULN_TYPE}: {attestations.CRITICAL_MESSAGE}' "
    f"(cpol) / '{attestations.IVPOL_CRITICAL}<image>' (ivpol)",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_predicate_violating_condition_denied(
    api: str,
    shared_namespace: MakeNamespace,
    admit: Admit,
    scenarios: Scenarios,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """A verified attestation is read, not only counted: what it says decides."""
    ns = shared_namespace(VARIANT[api])
    _denied("critical", api, ns, admit, scenarios, policy_of, target, attestations.CRITICAL_MESSAGE)


@pytest.mark.scenario(
    "ATT-04",
    step="Run a signed image whose (compliant) attestation is signed by another key",
    expect="denied: 'no matching attestations: accepted signatures do not match threshold' "
    "(cpol) / 'no verified vuln attestation for <image>' (ivpol)",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_attestation_by_another_key_denied(
    api: str,
    shared_namespace: MakeNamespace,
    admit: Admit,
    scenarios: Scenarios,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """Anyone can attach an attestation to an image; only the trusted key's counts."""
    ns = shared_namespace(VARIANT[api])
    _denied("otherkey", api, ns, admit, scenarios, policy_of, target)


@pytest.mark.scenario(
    "ATT-05",
    step=f"Run a signed image whose attestation reports a scan {attestations.STALE_DAYS} days old",
    expect="denied by the age condition: '... "
    f"{attestations.STALE_MESSAGE}' (cpol) / '{attestations.IVPOL_STALE}<image>' (ivpol)",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_stale_scan_denied(
    api: str,
    shared_namespace: MakeNamespace,
    admit: Admit,
    scenarios: Scenarios,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """A clean scan from last month says nothing about today's vulnerabilities."""
    ns = shared_namespace(VARIANT[api])
    _denied("stale", api, ns, admit, scenarios, policy_of, target, attestations.STALE_MESSAGE)


@pytest.mark.scenario(
    "ATT-06",
    step="Edit the statement of an attestation that reports 2 critical vulnerabilities to "
    "report 0, keeping its DSSE signature (an attacker with push rights, no key)",
    expect="denied: the envelope's signature no longer matches the statement: 'no matching "
    "attestations: accepted signatures do not match threshold' (cpol) / 'no verified vuln "
    "attestation for <image>' (ivpol), beside the attested image admitted",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_tampered_attestation_denied(
    api: str,
    shared_namespace: MakeNamespace,
    admit: Admit,
    scenarios: Scenarios,
    registry_client: oci.OciClient,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """The signature covers the statement: a failing scan cannot be rewritten into a
    passing one."""
    ns = shared_namespace(VARIANT[api])
    victim = scenarios.images["att-tampered"]

    def clean(statement: dict[str, Any]) -> None:
        statement["predicate"]["scanner"]["result"]["summary"]["critical"] = 0

    # Both APIs' cases share the image: the first to run tampers, the second finds it done.
    stored = forge.attestation_statement(registry_client, victim)
    if stored["predicate"]["scanner"]["result"]["summary"]["critical"] != 0:
        forge.tamper_attestation(registry_client, victim, clean)
        stored = forge.attestation_statement(registry_client, victim)
    assert stored["predicate"]["scanner"]["result"]["summary"]["critical"] == 0, stored
    _denied("tampered", api, ns, admit, scenarios, policy_of, target)

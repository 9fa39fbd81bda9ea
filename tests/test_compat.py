"""Signature formats: cosign v2's legacy `.sig`, cosign v3 told to write the legacy format,
and cosign v3's default (a Sigstore bundle stored as an OCI 1.1 referrer; a registry without
the referrers API, like CNCF distribution v3, gets the referrers tag schema instead) against
each policy API: ClusterPolicy `type: Cosign` (the seed's), ClusterPolicy
`type: SigstoreBundle`, and ImageValidatingPolicy.

Each cell records what the Kyverno under test accepts, as a result of its own in the report
(never a silent skip); it asks admission only, as a server-side dry run (the same webhooks
and verification, nothing stored) in the module's one namespace for its policy. For the
pinned Kyverno the recorded result must also match what it is known to do, so a change shows
up as a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fixtures.types import Admit, MakeNamespace, PolicyOf
from signcheck.clients import admission, k8s
from signcheck.clients.oci import PushedImage
from signcheck.kyverno.versions import BUNDLE_TRUST_ROOT
from signcheck.run import attesting
from signcheck.run.resources import SessionState
from signcheck.run.scenarios import FORMATS, MAIN, PolicyRef, Scenarios
from signcheck.suite import expect
from signcheck.target import Target
from signcheck.tools.cosign import Cosign

POLICIES = {"cpol-cosign": MAIN, "cpol-sigstorebundle": "bundle", "ivpol": "ivpol"}
PINNED_KYVERNO = "v1.19.1"
BUNDLE_MISS = "sigstore bundle verification failed: no matching signatures found"
KNOWN = {
    # (policy, format) -> what Kyverno v1.19.1 does (checked on the local target).
    ("cpol-cosign", "fmt-cosign-v2-legacy"): "admitted",
    ("cpol-cosign", "fmt-cosign-v3-legacy"): "admitted",
    ("cpol-cosign", "fmt-cosign-v3-bundle"): "denied: no signatures found",
    ("cpol-sigstorebundle", "fmt-cosign-v2-legacy"): f"denied: {BUNDLE_MISS}",
    ("cpol-sigstorebundle", "fmt-cosign-v3-legacy"): f"denied: {BUNDLE_MISS}",
    ("cpol-sigstorebundle", "fmt-cosign-v3-bundle"): "admitted",
    ("ivpol", "fmt-cosign-v2-legacy"): "admitted",
    ("ivpol", "fmt-cosign-v3-legacy"): "admitted",
    ("ivpol", "fmt-cosign-v3-bundle"): "admitted",
}


def _storage(tags: list[str], digest: str) -> str:
    hexpart = digest.split(":", 1)[1]
    if f"sha256-{hexpart}.sig" in tags:
        return f"legacy tag sha256-{hexpart[:12]}….sig"
    if f"sha256-{hexpart}" in tags:
        return f"referrers tag schema: sha256-{hexpart[:12]}… (an index)"
    return "OCI referrers API (no tag)"


def _judged(
    result: admission.Admission,
    record: dict[str, Any],
    record_compat: Callable[[dict[str, Any]], None],
    image: PushedImage,
    policy: PolicyRef,
    named: str | None,
) -> str:
    """Record what the cluster did in the table, check it is what it claims (an admission
    verified and pinned; a denial by the policy's webhook and rule, naming `named`), and
    return it as `admitted` or `denied: <reason>`."""
    if isinstance(result, admission.Admitted):
        record.update(result="admitted", reason="")
        record_compat(record)
        # An admission must be a verified one, whatever the format.
        expect.verified(result, "the image", image, policy.api)
    else:
        record.update(result="denied", reason=result.reason or result.message)
        record_compat(record)
        expect.denied_by(result, "the image", policy, image=named, reason=result.reason or "")
    return record["result"] + (f": {record['reason']}" if record["reason"] else "")


@pytest.mark.scenario(
    "COMPAT-01",
    step="Run an image signed in each cosign format, under each policy API",
    expect="recorded per cell; with Kyverno v1.19.1: ClusterPolicy type Cosign reads legacy "
    ".sig only (v3 bundle: denied, no signatures found); type SigstoreBundle reads v3 bundles "
    "only (legacy: denied, sigstore bundle verification failed); ImageValidatingPolicy reads "
    "all three. An admission is always a verified one (pinned to the digest); cosign itself "
    "verifies every image in its own format (the control)",
    versions=(BUNDLE_TRUST_ROOT,),
)
@pytest.mark.parametrize("policy", list(POLICIES))
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_signature_format(
    fmt: str,
    policy: str,
    shared_namespace: MakeNamespace,
    admit: Admit,
    scenarios: Scenarios,
    policy_of: PolicyOf,
    record_compat: Callable[[dict[str, Any]], None],
    cosign_of: Callable[[str], Cosign],
    run_state: SessionState,
    target: Target,
) -> None:
    """Which signatures the cluster can verify depends on the signing tool's format and the
    policy's API: this is the matrix a team needs before moving to cosign v3."""
    tool, fmt_kind = FORMATS[fmt]
    variant = POLICIES[policy]
    kyverno_version = target.versions.get("kyverno", "")
    known = KNOWN[(policy, fmt)] if kyverno_version == PINNED_KYVERNO else None
    record: dict[str, Any] = {
        "format": f"{fmt_kind} ({tool})",
        "signed_by": scenarios.compat.get("cosign", {}).get(tool, tool),
        "policy": policy,
        "kyverno": kyverno_version or "unknown",
        "referrers_api": scenarios.compat.get("referrers_api"),
        "expected": known or "(recorded only: no known result for this Kyverno)",
    }
    not_signed = scenarios.compat.get("errors", {}).get(fmt)
    if not_signed:
        record.update(result="not measured", reason=not_signed)
        record_compat(record)
        pytest.fail(
            f"the {fmt} image could not be signed, so this cell is not measured: {not_signed}"
        )
    image = scenarios.images[fmt]
    record["storage"] = _storage(scenarios.compat["storage"][fmt], image.digest)
    # Control: the signature itself is valid (cosign, in its own format, verifies it), so a
    # denial can only be about what the policy API reads.
    control = cosign_of(tool).verify(run_state.public_key, image.by_digest, fmt_kind)
    assert control.ok, f"cosign {tool} does not verify the {fmt} image: {control.result.error}"
    # A dry run in the module's namespace for the variant: the cell asks admission only.
    pod = k8s.pod("pod", shared_namespace(variant), image.by_tag, target.run_id)
    result = admit(pod, image.by_tag, dry_run=True)
    outcome = _judged(result, record, record_compat, image, policy_of(variant), image.by_tag)
    if known is not None:
        assert outcome == known, (
            f"Kyverno {kyverno_version} no longer does what it is known to do with {fmt} under "
            f"{policy}: {outcome!r}, known {known!r} (update the compatibility table)"
        )


ATTEST_POLICIES = {
    "cpol-cosign": "attest",
    "cpol-sigstorebundle": "attest-bundle",
    "ivpol": "ivpol-attest",
}
ATT_FAILED = "denied: image attestations verification failed, verifiedCount: 0, requiredCount: 1, "
ATT_BUNDLE_MISS = (
    ATT_FAILED + "error: sigstore bundle verification failed: no matching signatures found"
)
ATT_IVPOL_UNATTESTED = "denied: no verified vuln attestation for "
ATTEST_KNOWN: dict[tuple[str, str], str] = {
    # (policy, format) -> the start of what Kyverno v1.19.1 does with a compliant vuln
    # attestation (checked on the local target; an ivpol reason goes on with the image).
    ("cpol-cosign", "att-fmt-cosign-v2-legacy"): "admitted",
    ("cpol-cosign", "att-fmt-cosign-v3-legacy"): "admitted",
    ("cpol-cosign", "att-fmt-cosign-v3-bundle"): ATT_FAILED + "error: no matching attestations:",
    ("cpol-sigstorebundle", "att-fmt-cosign-v2-legacy"): ATT_BUNDLE_MISS,
    ("cpol-sigstorebundle", "att-fmt-cosign-v3-legacy"): ATT_BUNDLE_MISS,
    ("cpol-sigstorebundle", "att-fmt-cosign-v3-bundle"): "admitted",
    # kyverno#17109: no attestation without a transparency log verifies (ATT-01.ivpol).
    ("ivpol", "att-fmt-cosign-v2-legacy"): ATT_IVPOL_UNATTESTED,
    ("ivpol", "att-fmt-cosign-v3-legacy"): ATT_IVPOL_UNATTESTED,
    # The bundle attestation verifies, but the payload extractPayload hands the policy has no
    # `scanner`: the evaluation fails and the pod is refused.
    ("ivpol", "att-fmt-cosign-v3-bundle"): "denied: error: failed to evaluate policy: no such "
    "key: scanner",
}


@pytest.mark.scenario(
    "COMPAT-02",
    step="Run an image signed both ways (legacy .sig and a v3 bundle) whose compliant vuln "
    "attestation is in one cosign format, under each policy API requiring it",
    expect="recorded per cell in the same table; with Kyverno v1.19.1: see the README "
    "(attestations). An admission is always a verified one; cosign itself verifies every "
    "attestation in its own format (the control)",
    versions=(BUNDLE_TRUST_ROOT,),
)
@pytest.mark.parametrize("policy", list(ATTEST_POLICIES))
@pytest.mark.parametrize("fmt", list(attesting.FORMATS))
def test_attestation_format(
    fmt: str,
    policy: str,
    shared_namespace: MakeNamespace,
    admit: Admit,
    scenarios: Scenarios,
    policy_of: PolicyOf,
    record_compat: Callable[[dict[str, Any]], None],
    cosign_of: Callable[[str], Cosign],
    run_state: SessionState,
    target: Target,
) -> None:
    """Which attestations a policy counts depends on the attesting tool's format, as for
    signatures: the table a team needs before attesting with cosign v3's defaults."""
    tool, fmt_kind = attesting.FORMATS[fmt]
    variant = ATTEST_POLICIES[policy]
    kyverno_version = target.versions.get("kyverno", "")
    known = ATTEST_KNOWN.get((policy, fmt)) if kyverno_version == PINNED_KYVERNO else None
    image = scenarios.images[fmt]
    record: dict[str, Any] = {
        "format": f"attestation: {fmt_kind} ({tool})",
        "signed_by": scenarios.compat.get("cosign", {}).get(tool, tool),
        "policy": f"{policy} + vuln attestation",
        "kyverno": kyverno_version or "unknown",
        "referrers_api": scenarios.compat.get("referrers_api"),
        "expected": known or "(recorded only: no known result for this Kyverno)",
    }
    not_signed = scenarios.compat.get("errors", {}).get(f"tool:{tool}")
    if not_signed:
        record.update(result="not measured", reason=not_signed)
        record_compat(record)
        pytest.fail(f"{tool} is not available, so this cell is not measured: {not_signed}")
    # Control: the attestation itself verifies, so a denial can only be about what the policy
    # API reads. cosign v3, told the format: v2's verify-attestation switches to the bundle
    # format whenever the image has a bundle referrer (these all do, for their signatures).
    control = cosign_of("cosign-v3").verify_attestation(
        run_state.public_key, image.by_digest, "vuln", fmt_kind
    )
    assert control.ok, (
        f"cosign {tool} does not verify the {fmt} attestation: {control.result.error}"
    )
    # A dry run in the module's namespace for the variant: the cell asks admission only.
    pod = k8s.pod("pod", shared_namespace(variant), image.by_tag, target.run_id)
    result = admit(pod, image.by_tag, dry_run=True)
    outcome = _judged(result, record, record_compat, image, policy_of(variant), None)
    if known is not None:
        assert outcome.startswith(known) and (known != "admitted" or outcome == known), (
            f"Kyverno {kyverno_version} no longer does what it is known to do with {fmt} under "
            f"{policy}: {outcome!r}, known {known!r}... (update the compatibility table)"
        )

"""Supply-chain attacks: what an attacker with push rights to the registry (but no signing
key) or with create rights in a namespace can try, each against the seed's ClusterPolicy
(`cpol`) and its ImageValidatingPolicy twin (`ivpol`).

Every denial is asserted by webhook, policy, rule and reason, and has an admitted control
beside it, so it can only be blamed on what the attack changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from fixtures.types import Admit, MakeNamespace, PolicyOf
from signcheck.artefacts import forge
from signcheck.clients import admission, k8s, oci
from signcheck.clients.admission import Admission
from signcheck.kyverno.versions import IVPOL_BEFORE_1_19
from signcheck.run.resources import Images
from signcheck.run.scenarios import MAIN, Scenarios
from signcheck.suite import expect
from signcheck.target import Target
from signcheck.verdict.observe import observe

API = pytest.mark.parametrize("api", ["cpol", "ivpol"])
VARIANT = {"cpol": MAIN, "ivpol": "ivpol"}

CACHE_ADVISORY = "https://github.com/kyverno/kyverno/security/advisories/GHSA-2r43-6962-xcw5"
CACHE_GAP = (
    "a ClusterPolicy's verifyImages cache is keyed by policy, rule and image reference (the "
    "tag), not by the verified digest: a re-pointed tag is admitted from the cache for "
    "--imageVerifyCacheTTLDuration (default 60m) and mutateDigest pins it to the new, "
    "unsigned digest (upstream fix proposed in kyverno/kyverno#16213)"
)
CACHE_FIX = (
    "set `useCache: false` on every verifyImages rule (ATK-02.nocache shows it closes the "
    "gap), or start Kyverno with --imageVerifyCacheEnabled=false, or move to an "
    "ImageValidatingPolicy (ATK-02.ivpol); until then reference images by digest"
)


def _pod(ns: str, name: str, image: str, target: Target) -> dict[str, Any]:
    return k8s.pod(name, ns, image, target.run_id)


@pytest.mark.scenario(
    "ATK-01",
    step="Tag re-pointed after signing: sign :tag, push other content to :tag, run :tag",
    expect="denied: no signatures found (the tag names an unsigned digest now); the signed "
    "digest is still admitted",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_tag_repointed_after_signing(
    api: str,
    make_namespace: MakeNamespace,
    admit: Admit,
    scenarios: Scenarios,
    registry_client: oci.OciClient,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """A signature covers a digest, not a tag: re-pointing a signed tag to new content does
    not carry the signature over."""
    ns = make_namespace(VARIANT[api])
    signed = scenarios.images[f"repoint-cold-{api}"]
    moved = forge.repoint_tag(registry_client, signed)
    assert registry_client.resolve(signed.repository, signed.tag) == moved.digest
    # Control: what was signed is still admitted, by its digest.
    expect.verified(
        admit(_pod(ns, "signed-digest", signed.by_digest, target)),
        "the signed digest",
        signed,
        api,
        by="digest",
    )
    expect.denied_unsigned(
        admit(_pod(ns, "repointed", signed.by_tag, target), signed.by_tag),
        "the re-pointed tag",
        policy_of(VARIANT[api]),
        # An ImageValidatingPolicy pins the tag first, so its message names the new digest.
        image=signed.by_tag if api == "cpol" else f"{signed.by_tag}@{moved.digest}",
    )


@pytest.mark.scenario(
    "ATK-02",
    step="Tag re-pointed after it was admitted: run :tag, re-point :tag, run :tag again",
    expect="the first pod admitted (pinned to the signed digest), the second denied: "
    "no signatures found",
    versions=IVPOL_BEFORE_1_19,
)
@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            "cpol",
            marks=pytest.mark.expect(
                "denied: no signatures found. Kyverno v1.19.1 ClusterPolicy instead ADMITS it "
                "from its verification cache (keyed by tag) pinned to the unsigned digest: "
                "reported as a HIGH finding (GHSA-2r43-6962-xcw5) with its remediation, never "
                "as a pass"
            ),
        ),
        "nocache",
        "ivpol",
    ],
)
def test_tag_repointed_after_admission(
    case: str,
    make_namespace: MakeNamespace,
    admit: Admit,
    scenarios: Scenarios,
    registry_client: oci.OciClient,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """A verification result must not outlive the content it verified: after a tag was
    admitted once and then re-pointed, the next pod by that tag is checked again.
    `nocache` is the seed's policy with `useCache: false`."""
    variant = {"cpol": MAIN, "nocache": "nocache", "ivpol": "ivpol"}[case]
    api = "ivpol" if case == "ivpol" else "cpol"
    ns = make_namespace(variant)
    signed = scenarios.images[f"repoint-warm-{case}"]
    expect.verified(admit(_pod(ns, "before", signed.by_tag, target)), "before", signed, api)
    moved = forge.repoint_tag(registry_client, signed)
    result = admit(_pod(ns, "after", signed.by_tag, target), signed.by_tag)
    if case == "cpol" and isinstance(result, admission.Admitted):
        image = result.obj["spec"]["containers"][0]["image"]
        if image == f"{signed.by_tag}@{moved.digest}":
            observe(
                "ATK-02.cpol",
                f"an unsigned digest was admitted by a re-pointed tag: {CACHE_GAP}",
                "high",
                CACHE_FIX,
                reference=CACHE_ADVISORY,
                evidence=f"admitted {image} (signed digest {signed.digest})",
            )
    expect.denied_unsigned(
        result,
        "the re-pointed tag",
        policy_of(variant),
        image=signed.by_tag if api == "cpol" else f"{signed.by_tag}@{moved.digest}",
    )


@pytest.mark.scenario(
    "ATK-03",
    step="A signature copied onto another digest: image A's .sig stored as image B's",
    expect="denied: no matching signatures: invalid or missing digest in claim (cpol); "
    "the image named unverified (ivpol); image A still admitted",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_signature_copied_onto_another_digest(
    api: str,
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    scenarios: Scenarios,
    registry_client: oci.OciClient,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """A valid signature is bound to the digest in its payload: the same bytes under another
    image's signature tag do not make that image signed."""
    ns = make_namespace(VARIANT[api])
    source, victim = images.signed, scenarios.images[f"sigcopy-{api}"]
    forge.copy_signature(registry_client, source, victim)
    copied = registry_client.signature(victim.repository, victim.digest)
    assert copied is not None and copied.signatures, "the copied .sig is not in place"
    assert copied.signatures[0].signed_digest == source.digest
    expect.verified(admit(_pod(ns, "source", source.by_tag, target)), "image A", source, api)
    reason = "no matching signatures: invalid or missing digest in claim"
    expect.denied_by(
        admit(_pod(ns, "victim", victim.by_tag, target), victim.by_tag),
        "image B carrying image A's signature",
        policy_of(VARIANT[api]),
        image=victim.by_tag,
        reason=reason if api == "cpol" else expect.NO_MATCH[api],
    )


@pytest.mark.scenario(
    "ATK-04",
    step="A signature whose payload was tampered with (signature bytes kept)",
    expect="denied: no matching signatures: invalid signature when validating ASN.1 encoded "
    "signature (cpol); the image named unverified (ivpol)",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_tampered_signature_payload(
    api: str,
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    scenarios: Scenarios,
    registry_client: oci.OciClient,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """The signature covers every byte of the payload: one added field breaks it."""
    ns = make_namespace(VARIANT[api])
    victim = scenarios.images[f"tamper-{api}"]

    def edit(payload: dict[str, Any]) -> None:
        payload["optional"] = {**(payload.get("optional") or {}), "signcheck.io/tampered": "1"}

    tampered = forge.tamper_signature(registry_client, victim, edit)
    stored = registry_client.signature(victim.repository, victim.digest)
    assert stored is not None and stored.signatures[0].payload == tampered
    expect.verified(
        admit(_pod(ns, "control", images.signed.by_tag, target)), "control", images.signed, api
    )
    reason = "no matching signatures: invalid signature when validating ASN.1 encoded signature"
    expect.denied_by(
        admit(_pod(ns, "tampered", victim.by_tag, target), victim.by_tag),
        "the image with a tampered signature",
        policy_of(VARIANT[api]),
        image=victim.by_tag,
        reason=reason if api == "cpol" else expect.NO_MATCH[api],
    )


ROTATION = {"cpol": "rotation", "ivpol": "ivpol-rotation"}


@pytest.mark.scenario(
    "ATK-05",
    step="Signed with a key the policy does not list (policy with two keys, count 1)",
    expect="denied: no matching signatures, for every listed key (cpol: "
    ".attestors[0].entries[0] and [1]); an image signed with a listed key admitted",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_unlisted_key_denied(
    api: str,
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    scenarios: Scenarios,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """Any key is not good enough: only the keys the policy lists verify."""
    ns = make_namespace(ROTATION[api])
    expect.verified(
        admit(_pod(ns, "control", images.signed.by_tag, target)), "control", images.signed, api
    )
    third = scenarios.images["thirdkey"]
    denial = expect.denied_unverified(
        admit(_pod(ns, "thirdkey", third.by_tag, target), third.by_tag),
        "an image signed with a third key",
        policy_of(ROTATION[api]),
        image=third.by_tag,
    )
    if api == "cpol":
        assert denial.attestor == ".attestors[0].entries[0].keys"
        assert ".attestors[0].entries[1].keys: no matching signatures" in (denial.reason or "")


@pytest.mark.scenario(
    "ATK-06",
    step="Key rotation: a policy with two keys and count 1 admits an image signed with either",
    expect="both admitted, each pinned to its verified digest; an unsigned image denied",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_key_rotation_either_key(
    api: str,
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """During a rotation, images signed with the old key and with the new key both run."""
    ns = make_namespace(ROTATION[api])
    expect.verified(
        admit(_pod(ns, "old-key", images.signed.by_tag, target)), "old", images.signed, api
    )
    expect.verified(
        admit(_pod(ns, "new-key", images.otherkey.by_tag, target)), "new", images.otherkey, api
    )
    expect.denied_unsigned(
        admit(_pod(ns, "unsigned", images.unsigned.by_tag, target), images.unsigned.by_tag),
        "an unsigned image",
        policy_of(ROTATION[api]),
        image=images.unsigned.by_tag,
    )


@pytest.mark.scenario(
    "ATK-07",
    step="A pod that brings its own 'verified' annotation for an unsigned image",
    expect="denied: no signatures found (cpol) / the image named unverified (ivpol); the "
    "forged record is not trusted",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_forged_verification_record(
    api: str,
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """Kyverno's own bookkeeping annotations cannot be forged by the client: the image is
    verified anyway."""
    ns = make_namespace(VARIANT[api])
    policy = policy_of(VARIANT[api])
    unsigned = images.unsigned
    pod = _pod(ns, "forged", unsigned.by_tag, target)
    if api == "cpol":
        claim = {unsigned.by_tag: "pass", f"{unsigned.repository}@{unsigned.digest}": "pass"}
        scoped = {"version": 1, "policies": {f"/{policy.name}": {policy.rule: claim}}}
        forged = {
            expect.VERIFY_ANNOTATION: json.dumps(claim),
            expect.SCOPED_ANNOTATION: json.dumps(scoped),
        }
    else:
        outcome = {"name": policy.name, "status": "pass", "message": "forged"}
        forged = {"kyverno.io/image-verification-outcomes": json.dumps({policy.name: outcome})}
    pod["metadata"]["annotations"] = forged
    expect.verified(
        admit(_pod(ns, "control", images.signed.by_tag, target)), "control", images.signed, api
    )
    expect.denied_unsigned(
        admit(pod, unsigned.by_tag),
        "an unsigned pod with a forged verification record",
        policy,
        image=unsigned.by_tag,
    )


@pytest.mark.scenario(
    "ATK-08",
    step="Swap the image of an admitted pod for an unsigned one (pod update)",
    expect="the update denied: no signatures found (cpol) / the image named unverified "
    "(ivpol); an update to another verified reference admitted",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_image_swap_on_admitted_pod(
    api: str,
    make_namespace: MakeNamespace,
    admit: Admit,
    admit_patch: Callable[..., Admission],
    images: Images,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """Verification is not only at creation: changing an admitted pod's image is checked
    like a new pod."""
    ns = make_namespace(VARIANT[api])
    signed, unsigned = images.signed, images.unsigned
    expect.verified(admit(_pod(ns, "pod", signed.by_tag, target)), "the pod", signed, api)
    # Control: a legitimate update (the same signed image, by digest) is admitted.
    expect.verified(
        admit_patch(
            ns, "pod", {"spec": {"containers": [{"name": "app", "image": signed.by_digest}]}}
        ),
        "an update to the signed digest",
        signed,
        api,
        by="digest",
    )
    expect.denied_unsigned(
        admit_patch(
            ns,
            "pod",
            {"spec": {"containers": [{"name": "app", "image": unsigned.by_tag}]}},
            image=unsigned.by_tag,
        ),
        "the swap to an unsigned image",
        policy_of(VARIANT[api]),
        image=unsigned.by_tag,
    )

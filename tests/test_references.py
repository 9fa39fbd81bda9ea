"""Reference forms: by digest, by tag (rewritten to `tag@sha256:` by `mutateDigest`),
`verifyDigest`, `required`, images outside `imageReferences`, `skipImageReferences`."""

from __future__ import annotations

import pytest

from fixtures.types import Admit, MakeNamespace, PolicyOf
from signcheck.clients import admission, k8s
from signcheck.clients.admission import Admission
from signcheck.kyverno.versions import (
    IVPOL_BEFORE_1_19,
    IVPOL_NOT_REQUIRED_STOPS,
    UNSCOPED_RECORD,
)
from signcheck.run.resources import Images
from signcheck.run.scenarios import MAIN, Scenarios
from signcheck.suite import expect
from signcheck.target import Target

API = pytest.mark.parametrize("api", ["cpol", "ivpol"])
VARIANT = {"cpol": MAIN, "ivpol": "ivpol"}


def _annotations(result: Admission) -> dict[str, str]:
    assert isinstance(result, admission.Admitted)
    return expect.annotations_of(result.obj)


@pytest.mark.scenario(
    "REF-01",
    step="Run an image by digest",
    expect="admitted, the reference unchanged (repo@sha256:...), the pass recorded for it",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_by_digest(
    api: str, make_namespace: MakeNamespace, admit: Admit, images: Images, target: Target
) -> None:
    """A digest reference is verified as it is and left as it is."""
    ns = make_namespace(VARIANT[api])
    signed = images.signed
    expect.verified(
        admit(k8s.pod("by-digest", ns, signed.by_digest, target.run_id)),
        "a signed image by digest",
        signed,
        api,
        by="digest",
    )


@pytest.mark.scenario(
    "REF-02",
    step="Run an image by tag (mutateDigest, the default)",
    expect="admitted and rewritten to tag@sha256:<verified digest>; cpol records "
    "kyverno.io/verify-images = {repo@sha256:...: pass}",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_by_tag_pinned_to_digest(
    api: str,
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """What runs is exactly what was verified: the tag is pinned to the verified digest, so
    a later re-point of the tag cannot change the pod."""
    ns = make_namespace(VARIANT[api])
    signed = images.signed
    result = expect.verified(
        admit(k8s.pod("by-tag", ns, signed.by_tag, target.run_id)),
        "a signed image by tag",
        signed,
        api,
    )
    if api == "cpol":
        want = {f"{signed.repository}@{signed.digest}": "pass"}
        expect.record(_annotations(result), expect.VERIFY_ANNOTATION, "the signed pod", want)


@pytest.mark.scenario(
    "REF-03",
    step="verifyDigest (mutateDigest: false): run an image by tag",
    expect="denied by validate.kyverno.svc-fail: missing digest for <image>; by digest admitted",
)
def test_verify_digest_requires_digest(
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """`verifyDigest` (default true) refuses tags when nothing pins them: a tag can move."""
    ns = make_namespace("digest-required")
    signed = images.signed
    expect.verified(
        admit(k8s.pod("by-digest", ns, signed.by_digest, target.run_id)),
        "the signed image by digest",
        signed,
        "cpol",
        by="digest",
    )
    expect.denied_by(
        admit(k8s.pod("by-tag", ns, signed.by_tag, target.run_id), signed.by_tag),
        "the signed image by tag",
        policy_of("digest-required"),
        image=signed.by_tag,
        reason="missing digest",
    )


@pytest.mark.scenario(
    "REF-04",
    step="mutateDigest: false and verifyDigest: false: run an image by tag",
    expect="admitted with the tag unchanged, recorded {repo:tag: pass}; unsigned still denied",
)
def test_tag_kept_when_digest_optional(
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """Without both digest switches the signature is still verified, but the tag is left as
    it is (and so is what it may later point to)."""
    ns = make_namespace("digest-optional")
    signed, unsigned = images.signed, images.unsigned
    result = expect.admitted(
        admit(k8s.pod("by-tag", ns, signed.by_tag, target.run_id)), "the signed image by tag"
    )
    assert isinstance(result, admission.Admitted)
    assert result.obj["spec"]["containers"][0]["image"] == signed.by_tag
    want = {signed.by_tag: "pass"}
    expect.record(_annotations(result), expect.VERIFY_ANNOTATION, "the signed pod by tag", want)
    expect.denied_unsigned(
        admit(k8s.pod("unsigned", ns, unsigned.by_tag, target.run_id), unsigned.by_tag),
        "an unsigned image by tag",
        policy_of("digest-optional"),
        image=unsigned.by_tag,
    )


@pytest.mark.scenario(
    "REF-05",
    step="required (default true): every matched image must have been verified",
    expect="cpol: the admitted pod carries kyverno.io/verify-images-scoped "
    "{/<policy>: {<rule>: {repo@sha256:...: pass}}}, the record the validate webhook checks; "
    "ivpol: an unsigned init container the expression does not check is denied: "
    "image <ref> is not verified",
    versions=(*IVPOL_BEFORE_1_19, UNSCOPED_RECORD),
)
@API
def test_required(
    api: str,
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """`required` closes what the verification itself leaves open: an image that matched
    the policy but was never verified is refused."""
    signed, unsigned = images.signed, images.unsigned
    if api == "cpol":
        ns = make_namespace(MAIN)
        policy = policy_of(MAIN)
        result = expect.verified(
            admit(k8s.pod("pod", ns, signed.by_tag, target.run_id)), "signed", signed, api
        )
        want = {
            "version": 1,
            "policies": {
                f"/{policy.name}": {policy.rule: {f"{signed.repository}@{signed.digest}": "pass"}}
            },
        }
        expect.record(_annotations(result), expect.SCOPED_ANNOTATION, "the signed pod", want)
        return
    variant = "ivpol-containers-only"
    ns = make_namespace(variant)
    expect.verified(
        admit(k8s.pod("control", ns, signed.by_tag, target.run_id)), "control", signed, api
    )
    pod = k8s.pod("init-unsigned", ns, signed.by_tag, target.run_id)
    pod["spec"]["initContainers"] = [{"name": "init", "image": unsigned.by_tag}]
    expect.denied_by(
        admit(pod, unsigned.by_tag),
        "an unsigned init container no expression checks",
        policy_of(variant),
        image=unsigned.by_tag,
        reason="image ",
    )


@pytest.mark.scenario(
    "REF-06",
    step="required: false, with an expression that checks containers only",
    expect="ADMITTED: an unsigned init container passes, because nothing requires that "
    "matched images were verified (the documented meaning of required: false)",
    versions=(*IVPOL_BEFORE_1_19, IVPOL_NOT_REQUIRED_STOPS),
)
def test_not_required_leaves_unchecked_images(
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """The control for REF-05.ivpol: the same policy with `required: false` lets the
    unchecked image through, so REF-05's denial is `required`'s doing."""
    ns = make_namespace("ivpol-not-required")
    signed, unsigned = images.signed, images.unsigned
    pod = k8s.pod("init-unsigned", ns, signed.by_tag, target.run_id)
    pod["spec"]["initContainers"] = [{"name": "init", "image": unsigned.by_tag}]
    result = expect.admitted(admit(pod, unsigned.by_tag), "an unchecked unsigned init container")
    assert isinstance(result, admission.Admitted)
    inits = [c["image"] for c in result.obj["spec"]["initContainers"]]
    assert inits and inits[0].startswith(unsigned.by_tag), inits
    # And what the expression does check is still enforced.
    expect.denied_unsigned(
        admit(k8s.pod("unsigned", ns, unsigned.by_tag, target.run_id), unsigned.by_tag),
        "an unsigned container",
        policy_of("ivpol-not-required"),
        image=unsigned.by_tag,
    )


@pytest.mark.scenario(
    "REF-07",
    step="Run an unsigned image outside imageReferences",
    expect="admitted unchanged (out of scope: not pinned, no verification record); the "
    "unsigned image in scope denied",
)
@API
def test_outside_image_references(
    api: str,
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    scenarios: Scenarios,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """A policy checks only what it names: an image outside its `imageReferences` is not its
    business (scope your imageReferences to every registry you run from)."""
    ns = make_namespace(VARIANT[api])
    outside = scenarios.outside
    result = expect.admitted(
        admit(k8s.pod("outside", ns, outside.by_tag, target.run_id)), "an image out of scope"
    )
    assert isinstance(result, admission.Admitted)
    assert result.obj["spec"]["containers"][0]["image"] == outside.by_tag
    recorded = _annotations(result).get(expect.VERIFY_ANNOTATION)
    assert recorded is None, (
        f"the image out of scope was verified after all: {expect.VERIFY_ANNOTATION}={recorded}"
    )
    expect.denied_unsigned(
        admit(k8s.pod("inside", ns, images.unsigned.by_tag, target.run_id), images.unsigned.by_tag),
        "the unsigned image in scope",
        policy_of(VARIANT[api]),
        image=images.unsigned.by_tag,
    )


@pytest.mark.scenario(
    "REF-08",
    step="skipImageReferences lists the unsigned image's repository",
    expect="the unsigned image admitted, recorded as skip; an image signed with another "
    "key (not skipped) denied: no matching signatures",
)
def test_skip_image_references(
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """`skipImageReferences` exempts exactly what it lists, and nothing else."""
    ns = make_namespace("skip")
    unsigned, other = images.unsigned, images.otherkey
    result = expect.admitted(
        admit(k8s.pod("skipped", ns, unsigned.by_tag, target.run_id)), "the skipped image"
    )
    record = expect.record(_annotations(result), expect.VERIFY_ANNOTATION, "the skipped image")
    assert record and set(record.values()) == {"skip"}, (
        f"the skipped image: expected every entry of {expect.VERIFY_ANNOTATION} to be 'skip', "
        f"saw {record or 'an empty record'}"
    )
    expect.denied_unverified(
        admit(k8s.pod("otherkey", ns, other.by_tag, target.run_id), other.by_tag),
        "an image signed with another key",
        policy_of("skip"),
        image=other.by_tag,
    )

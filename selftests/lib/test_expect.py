"""expect: how a test's verdict on an admission reads, and what counts as an environment
problem rather than a verdict on signatures."""

from __future__ import annotations

import pytest

from signcheck.clients import admission
from signcheck.errors import EnvironmentNotReady
from signcheck.kyverno import ivpol
from signcheck.run.scenarios import PolicyRef
from signcheck.suite import expect

IMAGE = "reg:5000/signcheck/r/unsigned:r"


def cpol_denial(rule: str, text: str, webhook: str = "mutate.kyverno.svc-fail") -> admission.Denied:
    return admission.parse_denial(
        f'admission webhook "{webhook}" denied the request: resource Deployment/ns/d was '
        f"blocked due to the following policies\n\ncheck-image:\n  {rule}: '{text}'\n"
    )


CPOL = PolicyRef("main", "ClusterPolicy", "check-image", "check-image", {})
IVPOL = PolicyRef("ivpol", "ImageValidatingPolicy", "check-image-ivpol", None, {})


def test_autogen_rule_for_a_pod_controller() -> None:
    d = cpol_denial(
        "autogen-check-image",
        f"failed to verify image {IMAGE}: .attestors[0].entries[0].keys: no signatures found",
    )
    expect.denied_by(d, "x", CPOL, image=IMAGE, reason="no signatures found", kind="Deployment")
    with pytest.raises(AssertionError, match="rule: expected 'check-image'"):
        expect.denied_by(d, "x", CPOL, image=IMAGE, reason="no signatures found")


def test_validate_webhook_reasons_pick_the_validate_webhook() -> None:
    d = cpol_denial(
        "check-image", f"missing digest for {IMAGE}", webhook="validate.kyverno.svc-fail"
    )
    expect.denied_by(d, "x", CPOL, image=IMAGE, reason="missing digest")


def test_image_validating_policy_names_the_image_in_its_message() -> None:
    pinned = IMAGE + "@sha256:" + "a" * 64
    d = admission.parse_denial(
        f'admission webhook "{ivpol.webhook(IVPOL.name)}" denied the request: Policy '
        f"{IVPOL.name} failed: {ivpol.MESSAGE}{pinned}"
    )
    expect.denied_by(d, "x", IVPOL, image=IMAGE, reason=ivpol.MESSAGE)
    with pytest.raises(AssertionError, match="image: expected"):
        expect.denied_by(d, "x", IVPOL, image="reg:5000/other:r", reason=ivpol.MESSAGE)


def test_registry_errors_are_environment_problems_not_verdicts() -> None:
    d = cpol_denial(
        "check-image",
        f"failed to verify image {IMAGE}: .attestors[0].entries[0].keys: GET http://reg/v2/x: "
        "UNAUTHORIZED: authentication required",
    )
    with pytest.raises(EnvironmentNotReady, match="could not read the registry"):
        expect.denied_by(d, "x", CPOL, image=IMAGE, reason="no signatures found")
    with pytest.raises(EnvironmentNotReady):
        expect.admitted(d, "x")
    assert expect.environment_problem(d, "x") is d
    verdict = cpol_denial(
        "check-image",
        f"failed to verify image {IMAGE}: .attestors[0].entries[0].keys: no signatures found",
    )
    with pytest.raises(AssertionError, match="signature verdict"):
        expect.environment_problem(verdict, "x")


def test_verified_needs_the_pin_and_the_record() -> None:
    from signcheck.clients.oci import PushedImage

    img = PushedImage("reg:5000/s/r/signed", "r", "sha256:" + "b" * 64, "c", "l")
    pod = {
        "metadata": {
            "annotations": {expect.VERIFY_ANNOTATION: f'{{"{img.repository}@{img.digest}":"pass"}}'}
        },
        "spec": {"containers": [{"name": "app", "image": f"{img.by_tag}@{img.digest}"}]},
    }
    expect.verified(admission.Admitted(pod), "x", img, "cpol")
    unpinned = {**pod, "spec": {"containers": [{"name": "app", "image": img.by_tag}]}}
    with pytest.raises(AssertionError, match="not the verified digest"):
        expect.verified(admission.Admitted(unpinned), "x", img, "cpol")
    unrecorded = {**pod, "metadata": {}}
    with pytest.raises(AssertionError, match="without Kyverno's verification record"):
        expect.verified(admission.Admitted(unrecorded), "x", img, "cpol")
    expect.verified(admission.Admitted(unrecorded), "x", img, "ivpol")

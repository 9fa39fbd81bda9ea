"""expect: how a test's verdict on an admission reads, and what counts as an environment
problem rather than a verdict on signatures."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from signcheck.clients import admission
from signcheck.clients.oci import PushedImage
from signcheck.errors import EnvironmentNotReady
from signcheck.kyverno import ivpol, livecheck
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


# -- the scenarios' own checks of Kyverno's records read as words, not raw Python ---------

SIGNED = PushedImage("reg:5000/s/r/signed", "r", "sha256:" + "b" * 64, "c", "l")
UNSIGNED = PushedImage("reg:5000/s/r/unsigned", "r", "sha256:" + "e" * 64, "c", "l")


def _pod(image: str, annotations: dict[str, str] | None = None) -> admission.Admitted:
    meta: dict[str, object] = {"name": "p", "namespace": "ns"}
    if annotations is not None:
        meta["annotations"] = annotations
    return admission.Admitted(
        {"metadata": meta, "spec": {"containers": [{"name": "app", "image": image}]}}
    )


def test_a_missing_verification_record_is_said_in_words() -> None:
    """REF-04 on a pod Kyverno admitted without its record: once a `KeyError`."""
    from tests import test_references

    with pytest.raises(AssertionError) as raised:
        test_references.test_tag_kept_when_digest_optional(
            make_namespace=lambda variant="main", outside=False: "ns",
            admit=lambda obj, image=None: _pod(SIGNED.by_tag),
            images=SimpleNamespace(signed=SIGNED, unsigned=UNSIGNED),  # type: ignore[arg-type]
            policy_of=lambda variant: CPOL,
            target=SimpleNamespace(run_id="r"),  # type: ignore[arg-type]
        )
    text = str(raised.value)
    assert "without Kyverno's kyverno.io/verify-images annotation" in text, text
    assert f"expected {{'{SIGNED.by_tag}': 'pass'}}" in text and "no annotations" in text, text


def test_a_record_that_differs_says_what_was_expected_and_seen() -> None:
    """MODE-01 on an Audit pod with no verification record: once `assert {} == {...}`."""
    from tests import test_policy_modes

    pods = {
        "signed": {"admitted": True, "annotations": {}},
        "unsigned": {"admitted": True, "annotations": {}},
    }
    request = SimpleNamespace(node=SimpleNamespace(stash={}))
    with pytest.raises(AssertionError) as raised:
        test_policy_modes.test_audit_admits_and_reports(
            request=request,  # type: ignore[arg-type]
            scenarios=SimpleNamespace(audit_namespace="ns", audit_pods=pods),  # type: ignore[arg-type]
            images=SimpleNamespace(signed=SIGNED, unsigned=UNSIGNED),  # type: ignore[arg-type]
            cluster=None,  # type: ignore[arg-type]
            policy_of=lambda variant: CPOL,
            signcheck_run=None,  # type: ignore[arg-type]
        )
    text = str(raised.value)
    assert "assert {}" not in text, text
    assert f"expected {{'{SIGNED.by_tag}': 'pass'}}" in text, text
    assert "without Kyverno's kyverno.io/verify-images annotation" in text, text


def test_record_comparison_names_each_difference() -> None:
    with pytest.raises(AssertionError) as raised:
        expect.same_record(
            {"a": "fail", "c": "pass"},
            {"a": "pass", "b": "pass"},
            "a pod",
            expect.VERIFY_ANNOTATION,
        )
    text = str(raised.value)
    assert "'a': expected 'pass', saw 'fail'" in text, text
    assert "missing 'b'" in text and "unexpected 'c'" in text, text


# -- an expected denial that was admitted: what the live policy holds, never guesses -----


def test_admitted_without_a_cluster_says_the_live_policy_was_not_checked() -> None:
    ivpol_doc = {"kind": "ImageValidatingPolicy", "spec": {"validationActions": ["Deny"]}}
    ref = PolicyRef("ivpol", "ImageValidatingPolicy", "check-image-ivpol", None, ivpol_doc)
    with pytest.raises(AssertionError) as raised:
        expect.denied_unsigned(_pod(IMAGE), "an unsigned pod", ref, image=IMAGE)
    text = str(raised.value)
    assert "ADMITTED but must be denied" in text, text
    assert "the live ImageValidatingPolicy check-image-ivpol was not checked" in text, text
    # Neither a field of the other API read off the suite's copy, nor a list of guesses.
    assert "validationFailureAction" not in text and "An Audit policy" not in text, text


def _cpol_live(action: str, ready: str = "True", **verify: object) -> dict[str, object]:
    return {
        "kind": "ClusterPolicy",
        "metadata": {"name": "check-image", "generation": 2},
        "spec": {
            "validationFailureAction": action,
            "rules": [
                {
                    "name": "check-image",
                    "verifyImages": [{"imageReferences": ["reg:5000/signcheck/r/*"], **verify}],
                }
            ],
        },
        "status": {
            "conditions": [
                {"type": "Ready", "status": ready, "reason": "Succeeded", "observedGeneration": 2}
            ]
        },
    }


def test_live_cluster_policy_facts() -> None:
    assert livecheck.facts(None, "ClusterPolicy", "check-image", IMAGE) == (
        "ClusterPolicy check-image does not exist in the cluster"
    )
    audit = livecheck.facts(_cpol_live("Audit"), "ClusterPolicy", "check-image", IMAGE)
    assert "validationFailureAction=Audit (Audit only reports), Ready;" in audit, audit
    assert "matches its imageReferences (reg:5000/signcheck/r/*)" in audit, audit
    enforce = livecheck.facts(
        _cpol_live("Enforce", failureAction="Audit"), "ClusterPolicy", "check-image", IMAGE
    )
    assert "per rule check-image: failureAction=Audit" in enforce, enforce
    stale = livecheck.facts(_cpol_live("Enforce", "False"), "ClusterPolicy", "check-image", IMAGE)
    assert "NOT Ready (Succeeded: )" in stale, stale
    outside = livecheck.facts(
        _cpol_live("Enforce"), "ClusterPolicy", "check-image", "other.example/app:1"
    )
    assert "matches none of its imageReferences" in outside and "never checked" in outside
    skipped = livecheck.facts(
        _cpol_live("Enforce", skipImageReferences=["reg:5000/signcheck/r/unsigned*"]),
        "ClusterPolicy",
        "check-image",
        IMAGE,
    )
    assert "also its skipImageReferences (reg:5000/signcheck/r/unsigned*)" in skipped, skipped


def test_live_image_validating_policy_facts() -> None:
    live = {
        "kind": "ImageValidatingPolicy",
        "spec": {
            "validationActions": ["Audit"],
            "matchImageReferences": [{"glob": "reg:5000/*"}, {"expression": "true"}],
        },
        "status": {"conditionStatus": {"ready": True}},
    }
    text = livecheck.facts(live, "ImageValidatingPolicy", "p", IMAGE)
    assert "validationActions=['Audit'] (only Deny refuses), Ready;" in text, text
    assert "matches its matchImageReferences (reg:5000/*)" in text, text
    live["spec"]["matchImageReferences"] = [{"expression": "image.startsWith('x')"}]  # type: ignore[index]
    text = livecheck.facts(live, "ImageValidatingPolicy", "p", IMAGE)
    assert "were not evaluated" in text, text


def _ivpol_live(**spec: object) -> dict[str, object]:
    return {
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "check-image-ivpol"},
        "spec": {
            "validationActions": ["Deny"],
            "failurePolicy": "Fail",
            "evaluation": {"background": {"enabled": False}},
            "attestors": [
                {"cosign": {"key": {"data": "PEM"}, "ctlog": {"insecureIgnoreTlog": True}}}
            ],
            **spec,
        },
        "status": {"conditionStatus": {"ready": True}},
    }


def test_a_live_policy_that_differs_is_said_in_words(tmp_path: Path) -> None:
    """MODE-02 on a live ImageValidatingPolicy without a webhook timeout and with the SCT
    check on: once a `KeyError: 'webhookConfiguration'` (and `assert {...} == {...}`)."""
    from tests import test_policy_modes

    key = tmp_path / "cosign.pub"
    key.write_text("PEM\n")
    live = _ivpol_live()
    cluster = SimpleNamespace(get_object=lambda *args: live)
    with pytest.raises(AssertionError) as raised:
        test_policy_modes.test_image_validating_policy_twin(
            make_namespace=lambda variant="main", outside=False: "ns",
            admit=lambda obj, image=None: _pod(SIGNED.by_tag),
            images=SimpleNamespace(signed=SIGNED, unsigned=UNSIGNED),  # type: ignore[arg-type]
            cluster=cluster,  # type: ignore[arg-type]
            run_state=SimpleNamespace(public_key=key),  # type: ignore[arg-type]
            policy_of=lambda variant: IVPOL,
            target=SimpleNamespace(run_id="r"),  # type: ignore[arg-type]
        )
    text = str(raised.value)
    assert "ImageValidatingPolicy check-image-ivpol" in text, text
    assert "spec.webhookConfiguration.timeoutSeconds: expected 30, it is not set" in text, text
    assert (
        "spec.attestors.0.cosign.ctlog: expected {'insecureIgnoreTlog': True, "
        "'insecureIgnoreSCT': True}, saw {'insecureIgnoreTlog': True}"
    ) in text, text


def test_fields_name_each_difference() -> None:
    doc = {"spec": {"a": 1, "b": [{"c": "x"}]}}
    expect.fields(doc, {"spec.a": 1, "spec.b.0.c": "x"}, "doc")
    with pytest.raises(AssertionError) as raised:
        expect.fields(doc, {"spec.a": 2, "spec.b.1.c": "x", "spec.d": True}, "doc")
    text = str(raised.value)
    assert "spec.a: expected 2, saw 1" in text, text
    assert "spec.b.1.c: expected 'x', it is not set" in text, text
    assert "spec.d: expected True, it is not set" in text, text

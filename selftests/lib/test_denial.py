"""Denial parsing: the shapes Kyverno's messages take (YAML-wrapped, quoted, old wording)."""

from __future__ import annotations

import yaml

from signcheck.clients import admission

IMAGE = "127.0.0.1:45123/signcheck/20260101-000000-abcdef/unsigned:20260101-000000-abcdef"


def kyverno_message(
    rule_message: str, policy: str = "check-image", rule: str = "check-image"
) -> str:
    # Kyverno encodes the failures with a YAML encoder (width 80) exactly like this.
    body = yaml.safe_dump({policy: {rule: rule_message}}, width=80, indent=2)
    return (
        'admission webhook "mutate.kyverno.svc-fail" denied the request: \n\n'
        "resource Pod/sc-abcdef-unsigned/unsigned was blocked due to the following policies "
        f"\n\n{body}"
    )


def test_unsigned_denial_is_taken_apart() -> None:
    msg = kyverno_message(
        f"failed to verify image {IMAGE}: .attestors[0].entries[0].keys: no signatures found"
    )
    assert "\n    " in msg  # the YAML really wrapped
    d = admission.parse_denial(msg)
    assert d.webhook == "mutate.kyverno.svc-fail"
    assert (d.policy, d.rule, d.image) == ("check-image", "check-image", IMAGE)
    assert d.attestor == ".attestors[0].entries[0].keys"
    assert d.reason == "no signatures found"
    assert d.resource == "Pod/sc-abcdef-unsigned/unsigned"
    assert not d.webhook_unavailable


def test_other_key_reason_keeps_cosign_detail() -> None:
    msg = kyverno_message(
        f"failed to verify image {IMAGE}: .attestors[0].entries[0].keys: no matching "
        "signatures: error verifying signature: invalid signature when validating ASN.1 "
        "encoded signature"
    )
    d = admission.parse_denial(msg)
    assert d.reason is not None and d.reason.startswith("no matching signatures")


def test_seed_wording_of_older_kyverno() -> None:
    msg = kyverno_message(
        "failed to verify signature for cr.yandex/crpsere9njsa/alpine:2.0: "
        ".attestors[0].entries[0].keys: no matching signatures:"
    )
    d = admission.parse_denial(msg)
    assert d.image == "cr.yandex/crpsere9njsa/alpine:2.0"
    assert d.reason == "no matching signatures:"


def test_picks_the_failure_naming_the_image() -> None:
    other = IMAGE.replace("unsigned", "other")
    body = yaml.safe_dump(
        {
            "check-image": {
                "a": f"failed to verify image {other}: .attestors[0].entries[0].keys: x",
                "b": f"failed to verify image {IMAGE}: .attestors[0].entries[0].keys: y",
            }
        }
    )
    msg = f"resource Pod/ns/p was blocked due to the following policies \n\n{body}"
    d = admission.parse_denial(msg, image=IMAGE)
    assert (d.rule, d.reason) == ("b", "y")
    assert set(d.failures["check-image"]) == {"a", "b"}


def test_webhook_unreachable_is_flagged() -> None:
    msg = (
        'Internal error occurred: failed calling webhook "mutate.kyverno.svc-fail": failed '
        'to call webhook: Post "https://127.0.0.1:9443/mutate/fail?timeout=30s": dial tcp '
        "127.0.0.1:9443: connect: connection refused"
    )
    d = admission.parse_denial(msg, 500)
    assert d.webhook == "mutate.kyverno.svc-fail"
    assert d.webhook_unavailable and d.policy is None


def test_image_validating_policy_wording() -> None:
    d = admission.parse_denial(
        'admission webhook "ivpol.validate.kyverno.svc-fail" denied the request: Policy '
        "check-image-ivpol failed: image signature verification failed"
    )
    assert d.webhook == "ivpol.validate.kyverno.svc-fail"
    assert (d.policy, d.reason) == ("check-image-ivpol", "image signature verification failed")


def test_normalise() -> None:
    assert admission.normalise(" a\n   b\t c ") == "a b c"


def test_validate_webhook_verdicts_name_the_image() -> None:
    msg = kyverno_message(f"missing digest for {IMAGE}").replace("mutate.", "validate.")
    d = admission.parse_denial(msg)
    assert d.webhook == "validate.kyverno.svc-fail"
    assert (d.image, d.reason, d.verdict) == (IMAGE, "missing digest", "signature")
    d = admission.parse_denial(kyverno_message(f"unverified image {IMAGE}"))
    assert (d.image, d.reason) == (IMAGE, "unverified image")


def test_registry_errors_are_environment_problems() -> None:
    msg = kyverno_message(
        f"failed to verify image {IMAGE}: .attestors[0].entries[0].keys: GET "
        "http://127.0.0.1:45123/v2/signcheck/x/unsigned/manifests/t: UNAUTHORIZED: "
        "authentication required; [map[Action:pull Class: Name:signcheck/x Type:repository]]"
    )
    d = admission.parse_denial(msg)
    assert d.registry_error and d.verdict == "environment: registry"
    assert d.as_dict()["verdict"] == "environment: registry"
    signature = admission.parse_denial(
        kyverno_message(
            f"failed to verify image {IMAGE}: .attestors[0].entries[0].keys: no signatures found"
        )
    )
    assert not signature.registry_error and signature.verdict == "signature"


def test_image_validating_policy_error_wording() -> None:
    d = admission.parse_denial(
        'admission webhook "ivpol.mutate.kyverno.svc-fail-finegrained-p" denied the request: '
        "Policy p error: failed to update digest: failed to resolve digest for image x:1: GET "
        "http://h/v2/x/manifests/1: UNAUTHORIZED: authentication required"
    )
    assert d.policy == "p" and d.reason is not None and d.reason.startswith("error: failed")
    assert d.registry_error

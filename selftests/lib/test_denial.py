"""Denial parsing: the shapes Kyverno's messages take (YAML-wrapped, quoted, old wording)."""

from __future__ import annotations

import pytest
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


# What go-containerregistry v0.21.8 (the version Kyverno v1.19.1 builds with) returned for
# each registry failure, verbatim: captured by calling its `remote.Get` against real Go
# servers (a TLS server over http, a plain one over https, a closed port, an unresolvable
# name, a listener that never answers, registries answering 401/403/5xx/404).
GGCR_REGISTRY_WIDE = {
    "http-to-https": 'Get "https://127.0.0.1:35325/v2/": tls: failed to verify certificate: '
    "x509: certificate signed by unknown authority; GET http://127.0.0.1:35325/v2/: "
    "unexpected status code 400 Bad Request: Client sent an HTTP request to an HTTPS server.",
    # Not captured: ggcr's format for one failed request (transport/error.go) around the body
    # Go's TLS server sends to plain http (net/http/server.go), as a request made after the
    # ping answers it; the half of the answer above that the old pattern missed.
    "http-to-https-alone": "GET http://127.0.0.1:35325/v2/r/app/manifests/1: unexpected status "
    "code 400 Bad Request: Client sent an HTTP request to an HTTPS server.",
    "https-to-http": 'Get "https://registry.example.com/v2/": http: server gave HTTP response '
    "to HTTPS client",
    "unknown-authority": 'Get "https://tls.example.com/v2/": tls: failed to verify '
    "certificate: x509: certificate signed by unknown authority",
    "connection-refused": 'Get "https://127.0.0.1:37403/v2/": dial tcp 127.0.0.1:37403: '
    'connect: connection refused; Get "http://127.0.0.1:37403/v2/": dial tcp '
    "127.0.0.1:37403: connect: connection refused",
    "no-such-host": 'Get "https://registry.signcheck.invalid/v2/": dial tcp: lookup '
    "registry.signcheck.invalid on 10.255.255.53:53: no such host",
    "deadline": 'Get "https://silent.example.com/v2/": context deadline exceeded',
    "401": "GET http://127.0.0.1:34531/v2/r/app/manifests/1: UNAUTHORIZED: authentication "
    "required; [map[Action:pull Name:r/app Type:repository]]",
    "403": "GET http://127.0.0.1:39209/v2/r/app/manifests/1: unexpected status code 403 Forbidden",
    "denied": "GET http://127.0.0.1:45475/v2/r/app/manifests/1: DENIED: requested access to the "
    "resource is denied",
    "500": "GET http://127.0.0.1:43457/v2/r/app/manifests/1: unexpected status code 500 "
    "Internal Server Error",
    "503": "GET http://127.0.0.1:42457/v2/r/app/manifests/1: unexpected status code 503 Service "
    "Unavailable: upstream unavailable",
    "429": "GET http://127.0.0.1:33421/v2/r/app/manifests/1: TOOMANYREQUESTS: rate limit exceeded",
}
GGCR_ONE_IMAGE = {
    "manifest-unknown": "GET http://127.0.0.1:43581/v2/r/app/manifests/1: MANIFEST_UNKNOWN: "
    "manifest unknown; map[Tag:1]",
    "name-unknown": "GET http://127.0.0.1:37529/v2/r/app/manifests/1: NAME_UNKNOWN: repository "
    "name not known to registry; map[name:r/app]",
}
# Go's net package and net/http, for the failures a client timeout gives.
GO_TIMEOUTS = {
    "io-timeout": "dial tcp 10.0.0.1:443: i/o timeout",
    "tls-handshake": "net/http: TLS handshake timeout",
    "client-timeout": 'Get "https://r.example/v2/": net/http: request canceled while waiting '
    "for connection (Client.Timeout exceeded while awaiting headers)",
}


def _cpol(err: str) -> admission.Denied:
    return admission.parse_denial(
        kyverno_message(f"failed to verify image {IMAGE}: .attestors[0].entries[0].keys: {err}")
    )


def _ivpol(err: str) -> admission.Denied:
    return admission.parse_denial(
        'admission webhook "ivpol.mutate.kyverno.svc-fail-finegrained-p" denied the request: '
        f"Policy p error: failed to update digest: failed to resolve digest for image x:1: {err}"
    )


@pytest.mark.parametrize(
    "err",
    [*GGCR_REGISTRY_WIDE.values(), *GO_TIMEOUTS.values()],
    ids=[*GGCR_REGISTRY_WIDE, *GO_TIMEOUTS],
)
def test_registry_wide_failures_are_environment_not_verdicts(err: str) -> None:
    for d in (_cpol(err), _ivpol(err)):
        assert d.registry_error, d.reason
        assert d.verdict == "environment: registry"
        assert d.registry_wide, f"not seen as a failure of the registry as a whole: {d.reason}"


@pytest.mark.parametrize("err", list(GGCR_ONE_IMAGE.values()), ids=list(GGCR_ONE_IMAGE))
def test_one_missing_image_is_environment_but_not_registry_wide(err: str) -> None:
    d = _cpol(err)
    assert d.registry_error and d.verdict == "environment: registry"
    assert not d.registry_wide, d.reason


@pytest.mark.parametrize(
    "reason",
    [
        "no signatures found",
        "no matching signatures: error verifying signature: invalid signature when validating "
        "ASN.1 encoded signature",
        "no matching signatures: crypto/rsa: verification error",
        # A keyless signature whose certificate chain does not verify: about the signature.
        "no matching signatures: x509: certificate signed by unknown authority",
    ],
)
def test_signature_verdicts_stay_signature_verdicts(reason: str) -> None:
    d = _cpol(reason)
    assert not d.registry_error and not d.registry_wide and d.verdict == "signature"


# Kyverno v1.18.2, a SigstoreBundle ClusterPolicy offline (seen on the local target): the
# "connection refused" inside is the public TUF mirror through the closed loopback proxy.
TUF_OFFLINE = (
    "failed to get trusted root: 127.0.0.1:5000/signcheck/r/fmt:t: initializing tuf: updating "
    "local metadata and targets: error updating to TUF remote mirror: tuf: failed to download "
    '13.root.json: Get "https://tuf-repo-cdn.sigstore.dev/13.root.json": proxyconnect tcp: '
    "dial tcp 127.0.0.1:9: connect: connection refused"
)


def test_an_unreachable_trust_root_is_not_the_registry() -> None:
    """The run must not stop as if the registry were gone, nor call it a signature verdict:
    the cluster cannot fetch the public Sigstore trust root it asks for."""
    d = _cpol(TUF_OFFLINE)
    assert d.trust_root_error and not d.registry_error and not d.registry_wide
    assert d.verdict == "environment: trust root"

"""What admission said: `Admitted(obj)` or `Denied(webhook, policy, rule, image, reason,
message)`, parsed from the API server's answer.

Denials are parsed, never just caught: Kyverno answers with a YAML map of policy -> rule ->
message that the YAML encoder wraps near 80 columns, so the map is parsed as YAML, and every
string compared is whitespace-normalised first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

_WEBHOOK = re.compile(r'admission webhook "(?P<webhook>[^"]+)" denied the request:?')
_BLOCKED = re.compile(
    r"resource (?P<kind>[\w.]+)/(?P<namespace>[^/\s]*)/(?P<name>\S+) was blocked due to "
    r"the following policies"
)
# Kyverno >= 1.15 says "failed to verify image", older releases "failed to verify signature
# for" (the seed's wording); the reference never contains ": ", so a lazy match stops there.
_VERIFY = re.compile(r"failed to verify (?:image|signature for) (?P<image>\S+?):\s+(?P<rest>.*)")
# A verifyImages rule's `attestations` failed (pkg/engine/internal/imageverifier.go): the
# whole text is the reason; it names the image only when a predicate's conditions failed.
_ATTESTATIONS = re.compile(r"^image attestations verification failed, ")
_ATTESTED_IMAGE = re.compile(
    r"(?P<path>\.attestations\[\d+\]\S*): attestation checks failed for (?P<image>\S+) and "
    r"predicate"
)
_ATTESTOR = re.compile(r"^(?P<path>\.attestors\[\d+\](?:\.[\w]+(?:\[\d+\])?)*):\s*(?P<reason>.*)$")
# ImageValidatingPolicy: "Policy <name> failed: <message>" (a validation said no) or
# "Policy <name> error: <error>" (it could not be evaluated, e.g. the registry refused).
_IVPOL = re.compile(r"Policy (?P<policy>\S+) (?P<how>failed|error): (?P<reason>.*)")
# The validate webhook's own verdicts on verifyImages rules (verifyDigest, required).
_VALIDATE = re.compile(r"^(?P<reason>missing digest for|unverified image) (?P<image>\S+)$")
# The registry as a whole could not be read: unreachable, TLS or scheme mismatch, credentials
# refused, overloaded. Worded as go-containerregistry (pkg/v1/remote/transport/error.go), Go's
# net and net/http and the distribution spec's error codes say it; says nothing about
# signatures, and every later verification against that registry meets it too.
_REGISTRY_WIDE = re.compile(
    r"unauthorized|authentication required|\bforbidden\b|\bDENIED:|TOOMANYREQUESTS|"
    r"unexpected status code (?:40[0-8]|429|5\d\d)\b|"
    r"connection refused|connection reset|no such host|no route to host|network is "
    r"unreachable|i/o timeout|context deadline exceeded|Client\.Timeout exceeded|"
    r"TLS handshake timeout|tls: |x509: |server gave http response|"
    r"Client sent an HTTP request to an HTTPS server",
    re.IGNORECASE,
)
# One image or repository the registry does not have: a registry answer about that image,
# not a signature verdict, and not a reason to expect every other image to fail.
_REGISTRY_ONE_IMAGE = re.compile(
    r"manifest[ _]unknown|name[ _]unknown|blob[ _]unknown|repository name not known|"
    r"unexpected status code 404\b",
    re.IGNORECASE,
)
# Kyverno fetching the public Sigstore trust root (TUF): before 1.19 it does so for a
# SigstoreBundle ClusterPolicy and for a key-based ImageValidatingPolicy whatever
# --enableTuf says; offline it fails, and the "connection refused" inside is not the registry.
_TRUST_ROOT = re.compile(r"trusted root|initializing tuf|TUF client|tuf-repo-cdn", re.IGNORECASE)
# Kyverno's own wrappers around a registry read (pkg/cel/libs/imageverify, pkg/image/...).
_REGISTRY_READ = re.compile(
    r"failed to get imagedata|failed to resolve digest|failed to fetch image descriptor|"
    r"failed to fetch image index",
    re.IGNORECASE,
)
# Read fine, then refused by Kyverno's own platform choice: an ImageValidatingPolicy loads
# the linux/amd64 child of an index (go-containerregistry's default platform), and an index
# without one fails inside "failed to resolve digest" (IDX-03): a verdict on the image as it
# is published, not a registry failure to send the user to its credentials for.
_NO_PLATFORM = re.compile(r"no child with platform \S+ in index")
# Admission that is not a webhook: a ValidatingAdmissionPolicy (apiserver's
# validating/dispatcher.go) or Pod Security admission.
_VAP = re.compile(
    r"ValidatingAdmissionPolicy '(?P<policy>[^']+)' with binding '(?P<binding>[^']+)' denied"
)
_PSA = re.compile(r'violates PodSecurity "(?P<level>[^"]+)"')
# cosign's verdicts: whatever detail follows (an x509 chain error of a keyless signature) is
# about the signature, not the registry.
_VERDICTS = ("no signatures found", "no matching signatures")
_UNREACHABLE = re.compile(r'failed calling webhook "(?P<webhook>[^"]+)"')
# The API server gave up waiting for the webhook (its `timeoutSeconds`, which it sends as the
# call's `?timeout=` parameter): Kyverno, or a registry it was reading, was too slow.
_TIMED_OUT = re.compile(r"context deadline exceeded|Client\.Timeout exceeded", re.IGNORECASE)
_TIMEOUT_PARAM = re.compile(r"[?&]timeout=(?P<seconds>\d+)s\b")


def normalise(text: str) -> str:
    """Collapse every run of whitespace (including the YAML wraps) to one space."""
    return " ".join(text.split())


@dataclass(frozen=True)
class Admitted:
    obj: dict[str, Any]
    warnings: tuple[str, ...] = ()

    @property
    def admitted(self) -> bool:
        return True


@dataclass(frozen=True)
class Denied:
    """A refused request, with the policy verdict taken apart."""

    message: str
    """The API server's message, verbatim."""
    code: int
    webhook: str | None = None
    policy: str | None = None
    rule: str | None = None
    image: str | None = None
    reason: str | None = None
    """The verifier's own words, e.g. `no signatures found`."""
    attestor: str | None = None
    """Where in the policy the verdict came from, e.g. `.attestors[0].entries[0].keys`."""
    resource: str | None = None
    failures: dict[str, dict[str, str]] = field(default_factory=dict)
    """Every policy -> rule -> message in the denial."""

    @property
    def admitted(self) -> bool:
        return False

    @property
    def normalised(self) -> str:
        return normalise(self.message)

    @property
    def webhook_unavailable(self) -> bool:
        """The webhook could not be called (Kyverno down): an environment problem, not a
        signature verdict."""
        return _UNREACHABLE.search(self.message) is not None

    @property
    def webhook_timed_out(self) -> bool:
        """The webhook was called but did not answer within its timeout (fail-closed: the
        request was refused): an environment problem, not a signature verdict."""
        return self.webhook_unavailable and _TIMED_OUT.search(self.message) is not None

    @property
    def webhook_timeout_seconds(self) -> int | None:
        """The timeout the API server gave the webhook, as it named it in the call."""
        if not self.webhook_timed_out:
            return None
        found = _TIMEOUT_PARAM.search(self.message)
        return int(found["seconds"]) if found else None

    @property
    def registry_error(self) -> bool:
        """Kyverno could not read the registry (no or wrong credentials, unreachable, TLS,
        an image it does not have): an environment problem, not a signature verdict."""
        reason = self.reason or ""
        if reason.startswith(_VERDICTS) or _NO_PLATFORM.search(reason) or self.trust_root_error:
            return False
        return self.registry_wide or any(
            p.search(reason) for p in (_REGISTRY_ONE_IMAGE, _REGISTRY_READ)
        )

    @property
    def trust_root_error(self) -> bool:
        """Kyverno could not load the public Sigstore trust root it asked for (TUF): an
        environment problem of an offline cluster, not a signature verdict."""
        return _TRUST_ROOT.search(self.reason or "") is not None

    @property
    def registry_wide(self) -> bool:
        """The registry as a whole failed (not one missing image): every later verification
        against it fails the same way, so a run that meets it unexpectedly should stop."""
        reason = self.reason or ""
        if reason.startswith(_VERDICTS) or _REGISTRY_ONE_IMAGE.search(reason):
            return False
        return not self.trust_root_error and _REGISTRY_WIDE.search(reason) is not None

    @property
    def by_kyverno(self) -> bool:
        """Refused by one of Kyverno's webhooks (they all answer as `*.kyverno.svc*`)."""
        return ".kyverno.svc" in (self.webhook or "")

    @property
    def refused_by(self) -> str | None:
        """The admission that refused, when the message names one that is not Kyverno's: a
        webhook, a ValidatingAdmissionPolicy (and its binding) or Pod Security admission."""
        if self.webhook and not self.by_kyverno:
            return f'the admission webhook "{self.webhook}"'
        if v := _VAP.search(self.message):
            return f"ValidatingAdmissionPolicy '{v['policy']}' (binding '{v['binding']}')"
        if p := _PSA.search(self.message):
            return f'Pod Security admission (level "{p["level"]}")'
        return None

    @property
    def verdict(self) -> str:
        """`signature` (a verdict on the image), or `environment: webhook ...|registry|trust
        root`."""
        if self.webhook_timed_out:
            return "environment: webhook timed out"
        if self.webhook_unavailable:
            return "environment: webhook unavailable"
        if self.registry_error:
            return "environment: registry"
        if self.trust_root_error:
            return "environment: trust root"
        return "signature"

    def as_dict(self) -> dict[str, Any]:
        return {
            "admitted": False,
            "code": self.code,
            "webhook": self.webhook,
            "policy": self.policy,
            "rule": self.rule,
            "image": self.image,
            "reason": self.reason,
            "attestor": self.attestor,
            "resource": self.resource,
            "verdict": self.verdict,
            "message": self.message,
        }


Admission = Admitted | Denied


def _failures(message: str) -> dict[str, dict[str, str]]:
    """The policy -> rule -> message map after "was blocked due to the following policies"."""
    _, sep, tail = message.partition("was blocked due to the following policies")
    if not sep:
        return {}
    try:
        data = yaml.safe_load(tail)
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict):
        return {
            str(p): {str(r): normalise(str(m)) for r, m in rules.items()}
            for p, rules in data.items()
            if isinstance(rules, dict)
        }
    # Not valid YAML (a client truncated it?): fall back to the flat "policy: rule: msg".
    flat = re.match(r"\s*([\w.-]+):\s+([\w.-]+):\s+(.*)", normalise(tail))
    return {flat.group(1): {flat.group(2): flat.group(3).strip("'\"")}} if flat else {}


def parse_denial(message: str, code: int = 400, image: str | None = None) -> Denied:
    """Take a denial apart. `image`, when given, picks the failure that names that image
    (a pod with several images fails once per image)."""
    webhook = m.group("webhook") if (m := _WEBHOOK.search(message)) else None
    if webhook is None and (u := _UNREACHABLE.search(message)):
        webhook = u.group("webhook")
    resource = None
    if b := _BLOCKED.search(normalise(message)):
        resource = f"{b.group('kind')}/{b.group('namespace')}/{b.group('name')}"
    failures = _failures(message)
    chosen: tuple[str, str, str] | None = None
    for policy, rules in failures.items():
        for rule, text in rules.items():
            if chosen is None or (image and image in text and image not in chosen[2]):
                chosen = (policy, rule, text)
    if chosen is None:
        if iv := _IVPOL.search(normalise(message)):
            return Denied(
                message,
                code,
                webhook,
                iv.group("policy"),
                None,
                None,
                iv.group("reason")
                if iv.group("how") == "failed"
                else f"error: {iv.group('reason')}",
                resource=resource,
            )
        return Denied(message, code, webhook, resource=resource)
    policy, rule, text = chosen
    img = reason = attestor = None
    reason = text
    if _ATTESTATIONS.match(text):
        if named := _ATTESTED_IMAGE.search(text):
            img, attestor = named.group("image"), named.group("path")
    elif v := _VERIFY.search(text):
        img, reason = v.group("image"), v.group("rest")
        if a := _ATTESTOR.match(reason):
            attestor, reason = a.group("path"), a.group("reason")
    elif w := _VALIDATE.match(text):
        img, reason = w.group("image"), w.group("reason").removesuffix(" for")
    return Denied(message, code, webhook, policy, rule, img, reason, attestor, resource, failures)

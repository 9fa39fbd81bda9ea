"""Assertions on admission results that say *why* when they fail.

A denial is checked field by field (webhook, policy, rule, image, reason); an admission
where a denial was expected says what the live policy in the cluster holds (whether it exists,
its action, Ready, whether the image matches its references: `signcheck.kyverno.livecheck`),
read from the cluster the current test runs against (`checking_on`). A denial because the
webhook could not be called is an environment problem, never a verdict on signatures.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from signcheck.clients.admission import Admission, Admitted, Denied, normalise
from signcheck.clients.k8s import Cluster
from signcheck.clients.oci import PushedImage
from signcheck.errors import EnvironmentNotReady, RegistryUnavailable, WebhookUnavailable
from signcheck.kyverno import ivpol, livecheck
from signcheck.kyverno.cpol import autogen_rule
from signcheck.run.scenarios import PolicyRef

WEBHOOK = "mutate.kyverno.svc-fail"
"""Kyverno's webhook for verifyImages rules of fail-closed ClusterPolicies (1.15-1.19)."""
VALIDATE_WEBHOOK = "validate.kyverno.svc-fail"
"""Where a ClusterPolicy's `verifyDigest` and `required` checks deny."""
VALIDATE_REASONS = ("missing digest", "unverified image")


_CLUSTER: ContextVar[Cluster | None] = ContextVar("signcheck_expect_cluster", default=None)


@contextmanager
def checking_on(cluster: Cluster | None) -> Iterator[None]:
    """Within this block, an expected denial that was admitted is explained from the live
    policy in `cluster` (the suite's plugin wraps each test's call in it)."""
    token = _CLUSTER.set(cluster)
    try:
        yield
    finally:
        _CLUSTER.reset(token)


def describe_policy(policy: dict[str, Any]) -> str:
    """The fields of `policy` (a document: the live object, or the suite's copy) that decide
    whether it refuses."""
    if not policy:
        return "no verifyImages policy is applied for this run"
    spec = policy.get("spec", {})
    name = policy.get("metadata", {}).get("name")
    if policy.get("kind") == "ImageValidatingPolicy":
        action = f"validationActions={spec.get('validationActions')}"
    else:
        action = f"validationFailureAction={spec.get('validationFailureAction')}"
    kind = policy.get("kind", "policy")
    return f"{kind} {name} has {action}, failurePolicy={spec.get('failurePolicy')}"


def _environment(result: Denied, what: str) -> None:
    if result.webhook_timed_out:
        seconds = result.webhook_timeout_seconds
        within = f"its {seconds} s timeout" if seconds is not None else "its timeout"
        raise WebhookUnavailable(
            f"{what}: the admission webhook {result.webhook} did not answer within {within} "
            "(Kyverno, or a registry it was reading, was too slow) and the API server refused "
            "the request, fail-closed; this says nothing about signatures",
            result.message,
        )
    if result.webhook_unavailable:
        raise WebhookUnavailable(
            f"{what}: the admission webhook {result.webhook} could not be called (is Kyverno "
            "running?); this says nothing about signatures",
            result.message,
        )
    if result.trust_root_error:
        raise EnvironmentNotReady(
            f"{what}: Kyverno could not load the public Sigstore trust root (TUF) it fetches "
            f"for this verification ({result.reason}); an offline cluster cannot give it: "
            "this says nothing about signatures",
            result.message,
        )
    if result.registry_error:
        # Unreachable, TLS, scheme or credentials: every later test meets it too, so the
        # run stops; one image the registry lacks concerns this test only.
        error = RegistryUnavailable if result.registry_wide else EnvironmentNotReady
        raise error(
            f"{what}: Kyverno could not read the registry ({result.reason}); check the "
            "registry's reachability and the credentials Kyverno has for it (its image pull "
            "secret); this says nothing about signatures",
            result.message,
        )


def environment_problem(result: Admission, what: str) -> Denied:
    """The denial must be an environment problem (the registry or the webhook), never a
    signature verdict: returns it, or says what it was instead."""
    if isinstance(result, Admitted):
        raise AssertionError(f"{what} was ADMITTED but Kyverno should not be able to verify it")
    try:
        _environment(result, what)
    except EnvironmentNotReady:
        return result
    raise AssertionError(
        f"{what} was denied as a signature verdict ({result.reason!r}), but the cause is the "
        f"environment: the report would blame the image\nmessage: {normalise(result.message)}"
    )


def admitted(result: Admission, what: str) -> Admitted:
    if isinstance(result, Admitted):
        return result
    _environment(result, what)
    raise AssertionError(
        f"{what} was DENIED but must be admitted: webhook {result.webhook}, policy "
        f"{result.policy}, rule {result.rule}, reason: {result.reason}\n"
        f"message: {normalise(result.message)}"
    )


def denied(
    result: Admission,
    what: str,
    *,
    policy: str,
    rule: str | None,
    image: str | None,
    reason: str,
    webhook: str = WEBHOOK,
    policy_kind: str = "ClusterPolicy",
) -> Denied:
    """The denial names `webhook`, `policy`, `rule` and `image`, and its reason starts with
    `reason`. An ImageValidatingPolicy's denial has no rule and names the image inside its
    message (`rule=None`: the image is looked for in the reason). `image=None`: a denial
    Kyverno words without the image (a ClusterPolicy's attestation count). Admitted instead,
    the failure says what the live `policy_kind` `policy` holds."""
    if isinstance(result, Admitted):
        found = livecheck.explain(_CLUSTER.get(), policy_kind, policy, image or "")
        raise AssertionError(f"{what} was ADMITTED but must be denied. {found}.")
    _environment(result, what)
    got_reason = normalise(result.reason or "")
    problems = []
    checks = [("webhook", webhook, result.webhook), ("policy", policy, result.policy)]
    if rule is not None:
        checks.append(("rule", rule, result.rule))
        if image is not None:
            checks.append(("image", image, result.image))
    elif image is not None and image not in (result.reason or ""):
        problems.append(f"image: expected {image!r} in the reason, got {result.reason!r}")
    for field, want, got in checks:
        if want != got:
            problems.append(f"{field}: expected {want!r}, got {got!r}")
    if not got_reason.startswith(normalise(reason)):
        problems.append(f"reason: expected {reason!r}..., got {result.reason!r}")
    if problems:
        raise AssertionError(
            f"{what} was denied, but not as expected:\n  "
            + "\n  ".join(problems)
            + f"\nmessage: {normalise(result.message)}"
        )
    return result


def denied_by(
    result: Admission,
    what: str,
    policy: PolicyRef,
    *,
    image: str | None,
    reason: str,
    kind: str = "Pod",
) -> Denied:
    """`denied`, with the webhook and rule that the policy's API and the object's kind imply:
    a ClusterPolicy denies through `mutate.kyverno.svc-fail` (its `verifyDigest`/`required`
    checks through `validate.kyverno.svc-fail`) under the rule, or its autogen twin for a pod
    controller; an ImageValidatingPolicy through its own webhook, naming the image in its
    message."""
    if policy.api == "ivpol":
        return denied(
            result,
            what,
            policy=policy.name,
            rule=None,
            image=image,
            reason=reason,
            webhook=ivpol.webhook(policy.name),
            policy_kind=policy.kind,
        )
    webhook = VALIDATE_WEBHOOK if reason.startswith(VALIDATE_REASONS) else WEBHOOK
    return denied(
        result,
        what,
        policy=policy.name,
        rule=autogen_rule(policy.rule or "", kind),
        image=image,
        reason=reason,
        webhook=webhook,
        policy_kind=policy.kind,
    )


NO_SIGNATURES = {"cpol": "no signatures found", "ivpol": ivpol.MESSAGE}
"""The reason an unsigned image is denied, per API (an ImageValidatingPolicy says only what
its message says: which images no attestor verified)."""
NO_MATCH = {"cpol": "no matching signatures", "ivpol": ivpol.MESSAGE}
"""The reason an image whose signatures do not verify is denied, per API."""


def denied_unsigned(
    result: Admission, what: str, policy: PolicyRef, *, image: str, kind: str = "Pod"
) -> Denied:
    """`denied_by` for an image with no signature at all, in the wording of the policy's API."""
    reason = NO_SIGNATURES[policy.api]
    return denied_by(result, what, policy, image=image, reason=reason, kind=kind)


def denied_unverified(
    result: Admission, what: str, policy: PolicyRef, *, image: str, kind: str = "Pod"
) -> Denied:
    """`denied_by` for an image whose signatures do not verify against the policy's keys."""
    return denied_by(result, what, policy, image=image, reason=NO_MATCH[policy.api], kind=kind)


VERIFY_ANNOTATION = "kyverno.io/verify-images"
SCOPED_ANNOTATION = "kyverno.io/verify-images-scoped"


def annotations_of(obj: dict[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def record(
    annotations: dict[str, str], name: str, what: str, want: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON record Kyverno wrote into annotation `name` (checked against `want`, when
    given); a record that is missing, not JSON or different is said in words (expected,
    then seen)."""
    if name not in annotations:
        seen = ", ".join(sorted(annotations)) or "no annotations"
        expected = f"expected {want}" if want is not None else "expected its record there"
        raise AssertionError(
            f"{what} was admitted without Kyverno's {name} annotation: {expected}, the "
            f"object has {seen}"
        )
    try:
        got = json.loads(annotations[name])
    except ValueError:
        raise AssertionError(
            f"{what}: Kyverno's {name} annotation is not JSON: {annotations[name]!r}"
        ) from None
    if want is not None:
        same_record(got, want, what, name)
    if not isinstance(got, dict):
        raise AssertionError(f"{what}: Kyverno's {name} annotation is not a map: {got!r}")
    return got


_UNSET = object()


def _at(doc: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        elif isinstance(doc, dict) and part in doc:
            doc = doc[part]
        else:
            return _UNSET
    return doc


def field(doc: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of `doc` (see `fields`), or None when it is not set."""
    got = _at(doc, path)
    return None if got is _UNSET else got


def fields(doc: dict[str, Any], want: dict[str, Any], what: str) -> None:
    """Each dotted path of `want` (list items by index: `spec.rules.0.name`) holds its value
    in `doc`; otherwise one error naming, per field, what was expected and what was seen."""
    problems = []
    for path, value in want.items():
        got = _at(doc, path)
        if got is _UNSET:
            problems.append(f"{path}: expected {value!r}, it is not set")
        elif got != value:
            problems.append(f"{path}: expected {value!r}, saw {got!r}")
    if problems:
        raise AssertionError(f"{what} is not as expected: " + "; ".join(problems))


def same_record(got: Any, want: dict[str, Any], what: str, name: str) -> None:
    """`got == want`, or an error naming each entry that is missing, extra or different."""
    if got == want:
        return
    if not isinstance(got, dict):
        raise AssertionError(f"{what}: {name} is {got!r}, expected {want}")
    differences = [
        f"{k!r}: expected {want[k]!r}, saw {got[k]!r}"
        for k in want
        if k in got and got[k] != want[k]
    ]
    differences += [f"missing {k!r} (expected {want[k]!r})" for k in want if k not in got]
    differences += [f"unexpected {k!r} = {got[k]!r}" for k in got if k not in want]
    raise AssertionError(
        f"{what}: Kyverno's {name} record is not what verification writes: "
        + "; ".join(differences)
        + f" (expected {want}, saw {got})"
    )


def verified(
    result: Admission,
    what: str,
    image: PushedImage,
    api: str,
    *,
    by: str = "tag",
    container: str = "app",
) -> Admitted:
    """Admitted *because verified*: the container runs the image pinned to the digest that
    was verified (a tag becomes `tag@sha256:...`), and a ClusterPolicy recorded the pass in
    `kyverno.io/verify-images`. An admission without these could be a policy that never
    looked at the image."""
    admitted_ = admitted(result, what)
    obj = admitted_.obj
    spec = obj.get("spec", {})
    containers = {
        c.get("name"): c.get("image")
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(key) or []
    }
    want = f"{image.by_tag}@{image.digest}" if by == "tag" else image.by_digest
    got = containers.get(container)
    assert got == want, (
        f"{what} was admitted but container {container!r} runs {got!r}, not the verified "
        f"digest {want!r}: was it verified at admission?"
    )
    if api == "cpol":
        annotations = obj.get("metadata", {}).get("annotations") or {}
        record = json.loads(annotations.get(VERIFY_ANNOTATION, "{}") or "{}")
        key = f"{image.repository}@{image.digest}"
        assert record.get(key) == "pass", (
            f"{what} was admitted without Kyverno's verification record for {key}: "
            f"{VERIFY_ANNOTATION}={annotations.get(VERIFY_ANNOTATION)!r}"
        )
    return admitted_

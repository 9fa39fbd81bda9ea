"""Assertions on admission results that say *why* when they fail.

A denial is checked field by field (webhook, policy, rule, image, reason); an admission
where a denial was expected names the likely cause (no policy, policy in Audit, image outside
`imageReferences`). A denial because the webhook could not be called is an environment
problem, never a verdict on signatures.
"""

from __future__ import annotations

from typing import Any

from signcheck.errors import EnvironmentNotReady
from signcheck.k8s import Admission, Admitted, Denied, normalise

WEBHOOK = "mutate.kyverno.svc-fail"
"""Kyverno's webhook for verifyImages rules of fail-closed ClusterPolicies (1.15-1.19)."""


def describe_policy(policy: dict[str, Any]) -> str:
    if not policy:
        return "no verifyImages policy is applied for this run"
    spec = policy.get("spec", {})
    return (
        f"policy {policy.get('metadata', {}).get('name')} has "
        f"validationFailureAction={spec.get('validationFailureAction')}, "
        f"failurePolicy={spec.get('failurePolicy')}"
    )


def _environment(result: Denied, what: str) -> None:
    if result.webhook_unavailable:
        raise EnvironmentNotReady(
            f"{what}: the admission webhook {result.webhook} could not be called (is Kyverno "
            "running?); this says nothing about signatures",
            result.message,
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
    rule: str,
    image: str,
    reason: str,
    webhook: str = WEBHOOK,
    policy_doc: dict[str, Any] | None = None,
) -> Denied:
    if isinstance(result, Admitted):
        raise AssertionError(
            f"{what} was ADMITTED but must be denied. {describe_policy(policy_doc or {})}. "
            "An Audit policy only reports; a missing policy or an image outside "
            "imageReferences is never checked."
        )
    _environment(result, what)
    got_reason = normalise(result.reason or "")
    problems = []
    for field, want, got in (
        ("webhook", webhook, result.webhook),
        ("policy", policy, result.policy),
        ("rule", rule, result.rule),
        ("image", image, result.image),
    ):
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

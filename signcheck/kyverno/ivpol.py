"""The seed's policy as an `ImageValidatingPolicy` (`policies.kyverno.io/v1`, Kyverno's
successor to `ClusterPolicy` `verifyImages`), so clusters on either API are covered.

The twin keeps the seed's choices: Deny (enforce), fail-closed, a 30 s webhook timeout, no
background scanning, one cosign key (tlog and SCT ignored offline), the run's image glob.
What Kyverno v1.19.1 does with it (checked against its sources and on the local target):

- the denial comes from the webhook `ivpol.validate.kyverno.svc-fail-finegrained-<policy>`
  (a policy with its own timeout gets a webhook of its own) and reads
  `Policy <policy> failed: <message>`; the message here names every unverified image;
- `matchImageReferences` limits what is checked: images outside it are admitted;
- `mutateDigest` (default true) pins tags to digests in a mutating webhook that runs before
  the validation, so the validation (and its verification cache) sees `tag@sha256:...`;
- `required` (default true) denies any matched image that no expression verified, with
  `image <ref> is not verified: no policy performed a signature or attestation check on it`;
- pod controllers get autogen rules only when `matchConstraints` is exactly `pods`: listing
  `pods/ephemeralcontainers` (which ephemeral containers need) turns autogen off, so that
  needs a policy of its own (`ephemeral=True`);
- v3 bundles and legacy `.sig` signatures are both read, without a `type`;
- with background scanning on, Ready also needs the reports controller's RBAC on the matched
  resources; the seed's `background: false` is `evaluation.background.enabled: false`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from signcheck.kyverno.cpol import IMAGE_VALIDATING_POLICY, VARIANT_LABEL, namespace_selector
from signcheck.target import RUN_LABEL
from signcheck.verdict.gates import version_tuple

WEBHOOK_PREFIX = "ivpol.validate.kyverno.svc-fail"
MUTATE_WEBHOOK_PREFIX = "ivpol.mutate.kyverno.svc-fail"
MESSAGE = "no verified signature for "
"""The start of the denial message; the unverified images follow, comma-separated."""


def webhook(policy: str) -> str:
    """The validating webhook a fail-closed IVPOL with its own timeout is called through."""
    return f"{WEBHOOK_PREFIX}-finegrained-{policy}"


def mutate_webhook(policy: str) -> str:
    return f"{MUTATE_WEBHOOK_PREFIX}-finegrained-{policy}"


@dataclass(frozen=True)
class IvpolSpec:
    run_id: str
    image_references: tuple[str, ...]
    public_keys: tuple[str, ...]
    """One attestor per key; an image passes when at least one of them verifies it."""
    name: str = "check-image-ivpol"
    variant: str | None = "ivpol"
    seed_exact: bool = False
    action: Literal["Deny", "Audit"] = "Deny"
    timeout_seconds: int = 30
    ephemeral: bool = False
    """Match `pods/ephemeralcontainers` too (and so get no autogen for pod controllers)."""
    checks: Literal["all", "containers"] = "all"
    """Which images the validation verifies: every container list, or `containers` only
    (to show what `required` does with the images left out)."""
    mutate_digest: bool = True
    verify_digest: bool = True
    required: bool = True
    credentials: dict[str, Any] | None = None
    offline: bool = True
    background: bool = False
    """Background scanning (the seed's `background: false`); on, Ready needs the reports
    controller's RBAC on the matched resources."""


ALL_IMAGES = "images.containers + images.initContainers + images.ephemeralContainers"
"""Every image of a pod, as a CEL expression over the policy's `images`."""


def attestor_names(count: int) -> list[str]:
    return ["cosign" if i == 0 else f"cosign{i + 1}" for i in range(count)]


def render(spec: IvpolSpec) -> dict[str, Any]:
    names = attestor_names(len(spec.public_keys))
    attestors = []
    for name, pem in zip(names, spec.public_keys, strict=True):
        cosign: dict[str, Any] = {"key": {"data": pem.strip()}}
        if spec.offline:
            cosign["ctlog"] = {"insecureIgnoreTlog": True, "insecureIgnoreSCT": True}
        attestors.append({"name": name, "cosign": cosign})
    checked = "images.containers" if spec.checks == "containers" else ALL_IMAGES
    attestor_list = ", ".join(f"attestors.{n}" for n in names)
    resources = ["pods", "pods/ephemeralcontainers"] if spec.ephemeral else ["pods"]
    match: dict[str, Any] = {
        "resourceRules": [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": resources,
            }
        ]
    }
    if not spec.seed_exact:
        match["namespaceSelector"] = namespace_selector(spec.run_id, spec.variant)
    config = {
        key: value
        for key, value, default in (
            ("mutateDigest", spec.mutate_digest, True),
            ("verifyDigest", spec.verify_digest, True),
            ("required", spec.required, True),
        )
        if value != default
    }
    labels = {RUN_LABEL: spec.run_id}
    if spec.variant:
        labels[VARIANT_LABEL] = spec.variant
    body: dict[str, Any] = {
        "validationActions": [spec.action],
        "failurePolicy": "Fail",
        "webhookConfiguration": {"timeoutSeconds": spec.timeout_seconds},
        "evaluation": {"background": {"enabled": spec.background}},
        "matchConstraints": match,
        "matchImageReferences": [{"glob": g} for g in spec.image_references],
        "attestors": attestors,
        # Verified once per request (variables are evaluated lazily and kept), so the
        # message can name the images without verifying them twice.
        "variables": [
            {
                "name": "unverified",
                "expression": (
                    f"({checked}).filter(image, "
                    f"verifyImageSignatures(image, [{attestor_list}]) == 0)"
                ),
            }
        ],
        "validations": [
            {
                "expression": "size(variables.unverified) == 0",
                "messageExpression": f"'{MESSAGE}' + variables.unverified.join(', ')",
            }
        ],
    }
    if config:
        body["validationConfigurations"] = config
    if spec.credentials is not None:
        body["credentials"] = dict(spec.credentials)
    return {
        "apiVersion": IMAGE_VALIDATING_POLICY.api_version,
        "kind": IMAGE_VALIDATING_POLICY.kind,
        "metadata": {"name": spec.name, "labels": labels},
        "spec": body,
    }


def credentials_for(
    kyverno_version: str | None, registry_requires_auth: bool, insecure: bool, secret: str
) -> dict[str, Any] | None:
    """`credentials` a twin needs on this Kyverno to read a registry that requires auth.

    Kyverno before 1.19 reads the registry for an ImageValidatingPolicy only with the policy's
    own `credentials` (1.18 evaluator: GetRemoteOptsFromPolicy), so without them every image
    of a private registry is refused UNAUTHORIZED; 1.19 falls back to the controller's
    --imagePullSecrets (GlobalOptsOrDefault). On an older Kyverno the twins name Kyverno's
    pull secret themselves, as a user of that version must (docs/matrix.md)."""
    if not registry_requires_auth or not kyverno_version:
        return None
    if version_tuple(kyverno_version) >= (1, 19, 0):
        return None
    return {"allowInsecureRegistry": insecure, "secrets": [secret]}

"""What Kyverno before 1.19 does instead, as the suite observed it on v1.18.2 (offline, the
local target): the gates the scenarios' markers carry (`signcheck.verdict.gates`).

Each gate applies only on an older Kyverno and only to a failure that says what it
describes; docs/matrix.md lists what differs between the pinned versions.
"""

from __future__ import annotations

from signcheck.verdict.gates import Before

V1_19 = "v1.19.0"
RELEASE_1_19 = "https://github.com/kyverno/kyverno/releases/tag/v1.19.0"

IVPOL_TRUST_ROOT = Before(
    V1_19,
    "environment",
    matches=r"no verified signature for",
    why="a key-based ImageValidatingPolicy refused a signed image ('no verified signature'): "
    "before 1.19 its cosign verifier first loads the public Sigstore trust root (TUF), and "
    "this offline run cannot reach it (Kyverno's log: 'Failed to initialize TUF client'), so "
    "every image is refused and signatures cannot be judged under this API here",
    reference="https://github.com/kyverno/kyverno/blob/v1.18.2/pkg/image/verifiers/ivpol/cosign/verifier.go",
    cases=("ivpol",),
)

IVPOL_NO_AUTOGEN = Before(
    V1_19,
    "finding",
    matches=r"(Deployment|StatefulSet|DaemonSet|Job|CronJob|undo to revision \d+) with an "
    r"unsigned image was ADMITTED but must be denied|undo to revision \d+ was ADMITTED but "
    r"must be denied|the template runs '[^']*', not the verified|no autogen for pod controllers",
    why="the ImageValidatingPolicy got no pod-controller rules (its status.autogen stayed "
    "empty): a Deployment, StatefulSet, DaemonSet, Job or CronJob with an unsigned image is "
    "admitted and its template is not pinned to a digest; only the pods its controller "
    "creates are refused",
    reference=RELEASE_1_19,
    severity="medium",
    remediation="upgrade Kyverno to v1.19.0 or later, or verify pod controllers with a "
    "ClusterPolicy verifyImages rule (its autogen covers them on 1.18)",
    cases=("ivpol",),
)

UNSCOPED_RECORD = Before(
    V1_19,
    "finding",
    matches=r"without Kyverno's kyverno.io/verify-images-scoped annotation[\s\S]*"
    r"kyverno.io/verify-images\b",
    why="the verification record is the unscoped kyverno.io/verify-images annotation (1.19 "
    "keys it by policy and rule in kyverno.io/verify-images-scoped); ATK-07 checks that a "
    "forged record does not pass",
    reference=RELEASE_1_19,
    severity="info",
    cases=("cpol",),
)

IVPOL_NOT_REQUIRED_STOPS = Before(
    V1_19,
    "environment",
    matches=r"could not be called",
    why="its admission controller stopped (the API server's call got EOF and the process "
    "shut down) while answering the ImageValidatingPolicy with `required: false`; seen on "
    "every run of this scenario on the local target, cause not investigated",
    reference=RELEASE_1_19,
)

BUNDLE_TRUST_ROOT = Before(
    V1_19,
    "environment",
    matches=r"could not load the public Sigstore trust root",
    why="a ClusterPolicy with type SigstoreBundle loads the public Sigstore trust root (TUF) "
    "before it reads the bundle, and this offline run cannot reach it",
    reference="https://github.com/kyverno/kyverno/tree/v1.18.2/pkg/image/verifiers/cpol",
    cases=("sigstorebundle",),
)

IVPOL_BEFORE_1_19 = (IVPOL_NO_AUTOGEN, IVPOL_TRUST_ROOT)
"""For a scenario with an ImageValidatingPolicy case."""

"""The seed scenario (shared/seed/signing-and-verifying-images.md), step by step.

Each test carries a stable scenario ID and the seed step it proves. Every negative check has
a positive control beside it, so a denial can only be blamed on the signature.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fixtures.types import Admit, PodFor
from signcheck.clients import oci
from signcheck.clients.k8s import Cluster
from signcheck.kyverno import cpol
from signcheck.run.resources import Images, SessionState
from signcheck.suite import expect
from signcheck.suite.session import SigncheckRun
from signcheck.target import Target
from signcheck.tools.cosign import Cosign

# Only the seed's session resources: a run of the seed's tests alone makes nothing more.
pytestmark = pytest.mark.seed_only


@pytest.mark.scenario(
    "SEED-01",
    step="Sign the image: a sha256-<hex>.sig object appears",
    expect="the tag exists; its payload names the signed digest; the unsigned image has none",
)
def test_signature_artefact_names_the_digest(
    registry_client: oci.OciClient, images: Images
) -> None:
    """cosign stores the signature where the seed says, bound to the signed digest."""
    signed = images.signed
    tags = registry_client.tags(signed.repository)
    assert signed.signature_tag in tags, f"no {signed.signature_tag} in {signed.repository}: {tags}"
    artefact = registry_client.signature(signed.repository, signed.digest)
    assert artefact is not None and artefact.signatures, "the .sig manifest has no signature layer"
    payload = artefact.signatures[0]
    assert payload.signed_digest == signed.digest
    assert payload.identity == signed.repository
    assert payload.signature, "the signature annotation is empty"
    # Control: the unsigned image has no signature artefact at all.
    unsigned = images.unsigned
    assert unsigned.signature_tag not in registry_client.tags(unsigned.repository)
    assert registry_client.signature(unsigned.repository, unsigned.digest) is None


@pytest.mark.scenario(
    "SEED-02",
    step="Check manually that the signature is correct",
    expect="cosign verify: verified; the claims name the digest and the repository",
)
def test_cosign_verify_signed(cosign: Cosign, run_state: SessionState) -> None:
    """The signature verifies with the public key, outside the cluster."""
    signed = run_state.images.signed
    result = cosign.verify(run_state.public_key, signed.by_tag)
    assert result.ok, f"cosign verify failed: {result.outcome}: {result.result.error}"
    assert result.digests == [signed.digest]
    assert result.identities == [signed.repository]


@pytest.mark.scenario(
    "SEED-03",
    step="cosign verify of an unsigned image fails",
    expect="exit 10, no signatures found (the signed image verifies with the same key)",
)
def test_cosign_verify_unsigned(cosign: Cosign, run_state: SessionState) -> None:
    """cosign itself tells an unsigned image apart (so a denial later is no surprise)."""
    result = cosign.verify(run_state.public_key, run_state.images.unsigned.by_tag)
    assert result.outcome == "no_signatures", (result.outcome, result.result.error)
    assert "no signatures found" in result.result.error
    # Control: the same key verifies the signed image (SEED-02 proves it in detail).
    assert cosign.verify(run_state.public_key, run_state.images.signed.by_digest).ok


@pytest.mark.scenario(
    "SEED-04",
    step="Create a policy (kubectl apply -f policy.yaml): Ready",
    expect="the policy is Ready, enforcing, fail-closed, 30 s, with the signing key",
)
def test_policy_ready(policies: cpol.Policies, run_state: SessionState) -> None:
    """The policy under test is the seed's, live and enforcing, with the signing key."""
    assert run_state.policy, expect.describe_policy(run_state.policy)
    live = policies.get(run_state.policy_name)
    assert live is not None, f"ClusterPolicy {run_state.policy_name} does not exist"
    assert cpol.is_ready(live), f"not Ready: {live.get('status')}"
    action = str(expect.field(live, "spec.validationFailureAction"))
    assert action.lower() == "enforce", expect.describe_policy(live)
    what = f"ClusterPolicy {run_state.policy_name}"
    expect.fields(
        live,
        {"spec.failurePolicy": "Fail", "spec.background": False, "spec.webhookTimeoutSeconds": 30},
        what,
    )
    keys = "spec.rules.0.verifyImages.0.attestors.0.entries.0.keys.publicKeys"
    assert str(expect.field(live, keys)).strip() == run_state.public_key.read_text().strip(), (
        "the policy's public key is not the key the signed image was signed with"
    )


@pytest.mark.scenario(
    "SEED-05",
    step="Create a pod from the signed image: pod/pod created",
    expect="admitted, pinned to its digest, verification recorded, Running (local target)",
)
def test_signed_pod_admitted_and_running(
    pod_for: PodFor,
    admit: Admit,
    images: Images,
    cluster: Cluster,
    target: Target,
    signcheck_run: SigncheckRun,
    namespace: str,
    record_property: Callable[[str, object], None],
) -> None:
    """A signed image runs, and it runs the verified digest."""
    signed = images.signed
    result = expect.admitted(admit(pod_for("pod", signed.by_tag), signed.by_tag), "signed pod")
    image = result.obj["spec"]["containers"][0]["image"]
    annotations = result.obj["metadata"].get("annotations") or {}
    # Kyverno's mutateDigest pins the admitted image to the digest it verified, and it
    # records the verification in an annotation: together they prove the admission checked
    # the signature rather than merely letting the pod through.
    pinned = image == f"{signed.by_tag}@{signed.digest}"
    assert pinned and "kyverno.io/verify-images" in annotations, (
        "the signed pod was admitted but not verified at admission: image "
        f"{image!r} (expected pinned to @{signed.digest}), annotations {annotations}"
    )
    if target.pods_run:
        running = cluster.wait_pod_phase(
            namespace, "pod", "Running", signcheck_run.settings.timeouts.pod_running
        )
        if target.containers_run:
            # A real node: Running means a container, shown by its runtime's ID and state,
            # running the digest Kyverno verified (not a phase kwok set).
            (status,) = running["status"]["container_statuses"]
            assert str(status["container_id"]).startswith("containerd://"), status
            assert status["state"]["running"], status
            assert str(status["image_id"]).endswith(signed.digest), status
            record_property("container_id", status["container_id"])


@pytest.mark.scenario(
    "SEED-06",
    step="Create a pod from an unsigned image: denied by Kyverno",
    expect="denied by mutate.kyverno.svc-fail, policy and rule check-image, the image: "
    "no signatures found (a signed control pod admitted beside it)",
)
def test_unsigned_pod_denied(
    pod_for: PodFor, admit: Admit, images: Images, run_state: SessionState
) -> None:
    """An unsigned image is refused at admission, with Kyverno's own reason."""
    # Control first: the signed image is admitted in the same namespace, so the denial
    # below can only be about the signature.
    expect.admitted(
        admit(pod_for("control", images.signed.by_tag), images.signed.by_tag), "signed control pod"
    )
    unsigned = images.unsigned.by_tag
    expect.denied(
        admit(pod_for("pod2", unsigned), unsigned),
        "unsigned pod",
        policy=run_state.policy_name,
        rule=run_state.rule_name,
        image=unsigned,
        reason="no signatures found",
    )


@pytest.mark.scenario(
    "SEED-07",
    step="A pod from an image signed with another key is denied",
    expect="denied: no matching signatures (a signed control pod admitted beside it)",
)
def test_other_key_pod_denied(
    pod_for: PodFor, admit: Admit, images: Images, run_state: SessionState
) -> None:
    """A signature by a key the policy does not list is no signature."""
    expect.admitted(
        admit(pod_for("control", images.signed.by_tag), images.signed.by_tag), "signed control pod"
    )
    other = images.otherkey.by_tag
    expect.denied(
        admit(pod_for("pod3", other), other),
        "pod signed with another key",
        policy=run_state.policy_name,
        rule=run_state.rule_name,
        image=other,
        reason="no matching signatures",
    )

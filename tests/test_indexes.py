"""Multi-platform images: what a tag names is an OCI image index, what a node pulls is the
child for its own platform. Each index is pushed through the registry API with its children
(`signcheck.artefacts.indexes`) and signed at the index or at the children only, in the
session's signing batch; every case runs against the seed's ClusterPolicy (`cpol`) and its
ImageValidatingPolicy twin (`ivpol`).

Kyverno v1.19.1 (checked in its sources: `pkg/image/verifiers/cpol/cosign`, the SDK's
`imagedataloader`): both APIs resolve a tag to the digest it names (the index), verify that
digest and pin the pod to it; the ImageValidatingPolicy also loads the `linux/amd64` child
first (`remote.Image` with go-containerregistry's default platform) and fails when there is
none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fixtures.types import Admit, MakeNamespace, PolicyOf
from signcheck.artefacts import indexes
from signcheck.clients import admission, k8s, oci
from signcheck.clients.admission import Admission
from signcheck.clients.k8s import Cluster
from signcheck.kyverno import ivpol
from signcheck.kyverno.versions import IVPOL_BEFORE_1_19
from signcheck.run.scenarios import MAIN, Scenarios
from signcheck.suite import expect
from signcheck.suite.session import SigncheckRun
from signcheck.target import Target
from signcheck.verdict.observe import observe

API = pytest.mark.parametrize("api", ["cpol", "ivpol"])
VARIANT = {"cpol": MAIN, "ivpol": "ivpol"}

CHILDREN_ONLY = "https://github.com/kyverno/kyverno/issues/12630"
NO_AMD64_CHILD = "https://github.com/kyverno/kyverno/issues/16940"
NO_AMD64_CHILD_OPEN = "https://github.com/kyverno/kyverno/issues/17694"


def _pod(ns: str, name: str, image: str, target: Target, arch: str | None = None) -> dict[str, Any]:
    pod = k8s.pod(name, ns, image, target.run_id)
    if arch:
        # An image for one architecture only is meant for nodes of it (none here: the pod
        # waits unscheduled instead of failing a pull on a node it was never built for).
        pod["spec"]["nodeSelector"] = {"kubernetes.io/arch": arch}
    return pod


def node_platforms(cluster: Cluster, spec: indexes.IndexSpec) -> list[str]:
    """The platforms of `spec` that nodes of the cluster have (`os/arch` from the labels the
    kubelet, or kwok, sets): what a node of this cluster would pull from the index."""
    found = set()
    for node in cluster.core.list_node().items:
        labels = node.metadata.labels or {}
        found.add(f"{labels.get('kubernetes.io/os')}/{labels.get('kubernetes.io/arch')}")
    platforms = sorted(found & set(spec.platforms))
    if not platforms:
        pytest.skip(f"no node of the cluster is one of {spec.platforms} (nodes: {sorted(found)})")
    return platforms


def _pinned_digest(result: Admission) -> str:
    assert isinstance(result, admission.Admitted)
    return str(result.obj["spec"]["containers"][0]["image"]).rpartition("@")[2]


@pytest.mark.scenario(
    "IDX-01",
    step="A two-platform image index (linux/amd64, linux/arm64) signed at the index only: "
    "run it by tag",
    expect="admitted, pinned to the index digest (tag@sha256:<index>), the pass recorded for "
    "it (cpol); the index at that digest lists the nodes' platform child, which has no "
    "signature of its own: what the node pulls is covered by the signed index; on a real "
    "node the container runs from that index (its imageID)",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_index_signed_at_the_index(
    api: str,
    make_namespace: MakeNamespace,
    admit: Admit,
    scenarios: Scenarios,
    registry_client: oci.OciClient,
    cluster: Cluster,
    target: Target,
    signcheck_run: SigncheckRun,
    record_property: Callable[[str, object], None],
) -> None:
    """A tag of a multi-platform image names an index, and a signature on the index covers
    every child it lists by digest: whichever platform a node is, it runs a child that was
    verified, because the pod is pinned to the index that was."""
    ns = make_namespace(VARIANT[api])
    spec = indexes.BY_ROLE["idx-index-signed"]
    index = scenarios.images[spec.role]
    result = expect.verified(
        admit(_pod(ns, "index", index.by_tag, target), index.by_tag),
        "the index signed at the index",
        index,
        api,
    )
    # What a node pulls: the pinned digest is the index; from it the node picks its
    # platform's child, whose digest the signed index bytes name.
    stored = indexes.read_index(registry_client, index.repository, _pinned_digest(result))
    for platform in node_platforms(cluster, spec):
        child = scenarios.images[indexes.child_key(spec.role, platform)]
        assert stored.child_for(platform) == child.digest, (
            f"the pinned index lists {stored.platforms}, not the {platform} child "
            f"{child.digest} the run pushed"
        )
        assert registry_client.signature(child.repository, child.digest) is None, (
            f"the {platform} child is signed itself: the scenario needs it covered by the "
            "index's signature only"
        )
    signature = registry_client.signature(index.repository, index.digest)
    assert signature is not None and signature.signatures, "the index carries no signature"
    assert signature.signatures[0].signed_digest == index.digest
    if target.containers_run:
        running = cluster.wait_pod_phase(
            ns, "index", "Running", signcheck_run.settings.timeouts.pod_running
        )
        (status,) = running["status"]["container_statuses"]
        assert status["state"]["running"], status
        assert str(status["image_id"]).endswith(index.digest), (
            f"the node runs {status['image_id']}, not the verified index {index.digest}"
        )
        record_property("image_id", status["image_id"])


@pytest.mark.scenario(
    "IDX-02",
    step="The same two-platform index with its children signed and the index not: run it "
    "by tag, and the nodes' platform child by its digest",
    expect="the child by digest admitted and pinned (it is signed); the index by tag denied: "
    "no signatures found (cpol, naming the tag) / no verified signature for "
    "tag@sha256:<index> (ivpol): Kyverno verifies the digest the tag names, not the child a "
    "node pulls. Reported as an INFO finding (a signed image refused, kyverno#12630), "
    "never as a pass",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_children_signed_index_not(
    api: str,
    make_namespace: MakeNamespace,
    admit: Admit,
    scenarios: Scenarios,
    registry_client: oci.OciClient,
    cluster: Cluster,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """A signature on each platform image does not sign the index that lists them: the
    pod's tag names the index, so that is what must be signed (`cosign sign --recursive`
    signs both)."""
    ns = make_namespace(VARIANT[api])
    spec = indexes.BY_ROLE["idx-children-signed"]
    index = scenarios.images[spec.role]
    assert registry_client.signature(index.repository, index.digest) is None
    platform = node_platforms(cluster, spec)[0]
    child = scenarios.images[indexes.child_key(spec.role, platform)]
    signed = registry_client.signature(child.repository, child.digest)
    assert signed is not None and signed.signatures[0].signed_digest == child.digest
    # Control: the very image a node of this platform pulls is signed and admitted.
    expect.verified(
        admit(_pod(ns, "child", child.by_digest, target)),
        f"the signed {platform} child by digest",
        child,
        api,
        by="digest",
    )
    result = admit(_pod(ns, "index", index.by_tag, target), index.by_tag)
    if isinstance(result, admission.Admitted):
        # A Kyverno that verifies what a node pulls may admit it: then pinned to a digest
        # that is verified, the child or an index whose children are all signed.
        assert _pinned_digest(result) in (child.digest, index.digest), result.obj["spec"]
        return
    denial = expect.denied_unsigned(
        result,
        "the index whose children only are signed",
        policy_of(VARIANT[api]),
        # An ImageValidatingPolicy pins the tag first, so its message names the index digest.
        image=index.by_tag if api == "cpol" else f"{index.by_tag}@{index.digest}",
    )
    observe(
        f"IDX-02.{api}",
        "a multi-platform image signed at its platform images but not at its index is "
        "refused: Kyverno verifies the digest the tag names (the index), not the child a node "
        "pulls",
        "info",
        "sign the index as well (`cosign sign --recursive <image>@<index digest>` signs the "
        "index and every child), or reference the platform image by its digest",
        reference=CHILDREN_ONLY,
        evidence=f"{denial.webhook} denied {index.by_tag} ({denial.reason}); the signed "
        f"{platform} child {child.digest} by digest was admitted",
    )


@pytest.mark.scenario(
    "IDX-03",
    step="Single-platform indexes signed at the index: one linux/amd64 child, one "
    "linux/arm64 child (the pod for arm64 nodes)",
    expect="both admitted and pinned to their index digests",
    versions=IVPOL_BEFORE_1_19,
)
@pytest.mark.parametrize(
    "api",
    [
        "cpol",
        pytest.param(
            "ivpol",
            marks=pytest.mark.expect(
                "the linux/amd64-only index admitted and pinned; the linux/arm64-only index "
                "denied by ivpol.mutate.kyverno.svc-fail-finegrained-<policy>: failed to "
                "resolve digest for image <tag>: no child with platform linux/amd64 in index "
                "(Kyverno v1.19.1 loads the linux/amd64 child whatever the node). Reported as "
                "an INFO finding (a signed image refused, kyverno#16940, fixed after "
                "1.19.1 for single-child indexes only; kyverno#17694), never as a pass"
            ),
        ),
    ],
)
def test_single_platform_index(
    api: str,
    make_namespace: MakeNamespace,
    admit: Admit,
    scenarios: Scenarios,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """An index with one platform is as valid as a plain image, whichever that platform is:
    signed at the index, it is admitted for the nodes it was built for."""
    ns = make_namespace(VARIANT[api])
    amd64, arm64 = scenarios.images["idx-amd64-only"], scenarios.images["idx-arm64-only"]
    # Control: a one-child index of the platform Kyverno resolves by default.
    expect.verified(
        admit(_pod(ns, "amd64", amd64.by_tag, target)), "the linux/amd64-only index", amd64, api
    )
    result = admit(_pod(ns, "arm64", arm64.by_tag, target, arch="arm64"), arm64.by_tag)
    if api == "ivpol" and isinstance(result, admission.Denied):
        policy = policy_of(VARIANT[api])
        # Refused while pinning the tag (the mutating webhook), before any signature check.
        missing = f"no child with platform linux/amd64 in index {arm64.by_tag}"
        denial = expect.denied(
            result,
            "the signed linux/arm64-only index",
            policy=policy.name,
            rule=None,
            image=arm64.by_tag,
            reason="error: failed to update digest: failed to resolve digest for image "
            f"{arm64.by_tag}: {missing}",
            webhook=ivpol.mutate_webhook(policy.name),
            policy_kind=policy.kind,
        )
        assert denial.verdict == "signature", denial.verdict
        observe(
            "IDX-03.ivpol",
            "a signed image index without a linux/amd64 child is refused by an "
            "ImageValidatingPolicy: Kyverno loads the linux/amd64 child to evaluate the "
            "policy, whatever platform the pod's nodes are",
            "info",
            "verify such images with a ClusterPolicy verifyImages rule (IDX-03.cpol admits "
            "them) until a Kyverno release resolves single-platform indexes by digest "
            "(kyverno/sdk#130; multi-child non-amd64 indexes stay open in kyverno#17694)",
            reference=NO_AMD64_CHILD,
            evidence=f"{result.webhook}: {result.reason} (see also {NO_AMD64_CHILD_OPEN})",
        )
    expect.verified(result, "the linux/arm64-only index", arm64, api)

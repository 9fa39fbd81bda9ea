"""Updates and controllers: what admission does with workloads that change after they were
admitted, or that were admitted before a policy governed them (policy-controller's own e2e
checks the same), against the seed's ClusterPolicy (`cpol`) and its ImageValidatingPolicy
twin (`ivpol`).

UPD-01 and UPD-02 start at session setup (`signcheck.run.updates`): their Deployments are
made in a namespace no policy selects yet, which is then brought under the policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fixtures.types import Admit, MakeNamespace, PolicyOf
from signcheck.clients import k8s, oci, rollouts, workloads
from signcheck.clients.admission import Admission, Admitted
from signcheck.clients.k8s import Cluster
from signcheck.errors import EnvironmentNotReady
from signcheck.kyverno.versions import IVPOL_BEFORE_1_19
from signcheck.report.summary import admission_record
from signcheck.run import updates
from signcheck.run.resources import Images
from signcheck.run.scenarios import MAIN, PolicyRef, Scenarios
from signcheck.suite import expect
from signcheck.suite.session import SigncheckRun
from signcheck.suite.stash import ADMISSIONS, NAMESPACE
from signcheck.target import Target

API = pytest.mark.parametrize("api", ["cpol", "ivpol"])
VARIANT = {"cpol": MAIN, "ivpol": "ivpol"}


def _log(
    request: pytest.FixtureRequest, what: str, image: str | None, result: Admission
) -> Admission:
    """Keep an admission answer for the report (as the `admit` fixture does)."""
    log = request.node.stash.setdefault(ADMISSIONS, [])
    log.append(admission_record(what, image, result))
    return result


def _prepared(request: pytest.FixtureRequest, scenarios: Scenarios, api: str, scenario: str) -> str:
    """The namespace the session setup prepared for `scenario` under `api`."""
    record = scenarios.updates
    if not record:
        pytest.skip(
            "--seed-exact-policy: the seed's cluster-wide policy governs every namespace from "
            "the start, so none can be brought under a policy later"
        )
    if api in record["errors"]:
        raise EnvironmentNotReady(f"the session setup of UPD ({api}) failed", record["errors"][api])
    if api not in record["namespaces"]:
        pytest.skip(f"the policy variant {VARIANT[api]!r} is not applied in this run")
    ns: str = record["namespaces"][api][scenario]
    request.node.stash[NAMESPACE] = ns
    return ns


def _unsigned_ref(image: oci.PushedImage, api: str) -> str:
    # An ImageValidatingPolicy pins the tag before it verifies, so it names the digest too.
    return image.by_tag if api == "cpol" else f"{image.by_tag}@{image.digest}"


def _template_verified(
    obj: dict[str, Any], what: str, image: oci.PushedImage, api: str, by: str = "tag"
) -> None:
    """A Deployment admitted because verified: its template runs the verified digest, and a
    ClusterPolicy recorded the pass."""
    want = f"{image.by_tag}@{image.digest}" if by == "tag" else image.by_digest
    got = workloads.pod_spec(obj)["containers"][0]["image"]
    assert got == want, f"{what}: the template runs {got!r}, not the verified {want!r}"
    if api == "cpol":
        want_record = {f"{image.repository}@{image.digest}": "pass"}
        expect.record(expect.annotations_of(obj), expect.VERIFY_ANNOTATION, what, want_record)


def _refused_unchanged(
    cluster: Cluster,
    ns: str,
    result: Admission,
    what: str,
    policy: PolicyRef,
    images: Images,
    by: str = "tag",
) -> None:
    """Deployment `app` was refused the unsigned image (named as each API names it) and
    still runs the signed one (`by` tag or digest)."""
    image = _unsigned_ref(images.unsigned, policy.api)
    expect.denied_unsigned(result, what, policy, image=image, kind="Deployment")
    after = rollouts.deployment(cluster, ns, "app")
    _template_verified(after, f"after the refused {what}", images.signed, policy.api, by)


@pytest.mark.scenario(
    "UPD-01",
    step="A Deployment made from an unsigned image before a policy governed its namespace: "
    "`kubectl scale` it up, then down",
    expect="the scale admitted (Kyverno judges Deployments, not deployments/scale); the pod "
    "the ReplicaSet creates refused, as its FailedCreate condition and event say: "
    "mutate.kyverno.svc-fail, check-image, no signatures found (cpol) / the twin's webhook, "
    "no verified signature for <image> (ivpol); the pods from before keep running; scaling "
    "down works; a signed Deployment made the same way scales up, its new pod verified",
    versions=IVPOL_BEFORE_1_19,
)
@API
@pytest.mark.late
@pytest.mark.usefixtures("enforcement")
def test_scale_up_after_policy(
    api: str,
    request: pytest.FixtureRequest,
    scenarios: Scenarios,
    images: Images,
    cluster: Cluster,
    policy_of: PolicyOf,
    target: Target,
    signcheck_run: SigncheckRun,
) -> None:
    """A policy applied to a running cluster stops an unsigned workload from growing: the
    pods a controller creates after it are judged like any other, though only the
    controller hears the refusal. The scale-up happened at session setup."""
    ns = _prepared(request, scenarios, api, updates.SCALE)
    signed, unsigned = images.signed, images.unsigned
    timeout = signcheck_run.settings.timeouts.pod_running
    image = _unsigned_ref(unsigned, api)
    rs, denial = rollouts.wait_failed_create(cluster, ns, "unsigned", timeout, image)
    what = f"create Pod {ns}/{rs['metadata']['name']}-* (the ReplicaSet controller)"
    _log(request, what, image, denial)
    policy = policy_of(VARIANT[api])
    expect.denied_unsigned(denial, "the pod the ReplicaSet made to scale up", policy, image=image)
    events = rollouts.failed_create_events(cluster, ns, rs["metadata"]["name"])
    same = [
        e
        for e in events
        if (e.webhook, e.policy, e.reason) == (denial.webhook, denial.policy, denial.reason)
    ]
    assert same, (
        f"no FailedCreate event of {rs['metadata']['name']} says {denial.reason!r}: {events}"
    )
    # Kyverno refuses new pods; it never evicts the ones admitted before the policy.
    old = rollouts.pods_of(cluster, ns, "unsigned")
    before = [p["spec"]["containers"][0]["image"] for p in old]
    assert before == [unsigned.by_tag] * updates.BEFORE["unsigned"], (
        f"the pods from before: {before}"
    )
    if target.pods_run:
        phases = [p.get("status", {}).get("phase") for p in old]
        assert set(phases) == {"Running"}, f"the pods from before: {phases}"
    # Control: the signed Deployment's new pod, made by the same controller, is verified.
    (new,) = rollouts.wait_replicas(cluster, ns, "signed", updates.BEFORE["signed"] + 1, timeout)
    expect.verified(Admitted(new), "the signed Deployment's new pod", signed, api)
    down = _log(
        request,
        f"scale Deployment {ns}/unsigned to 0",
        None,
        rollouts.scale(cluster, ns, "unsigned", 0),
    )
    expect.admitted(down, "scaling the unsigned Deployment down")
    rollouts.wait_replicas(cluster, ns, "unsigned", 0, timeout)


@pytest.mark.scenario(
    "UPD-02",
    step="`kubectl rollout undo` of a Deployment whose history, made before the policy, has a "
    "signed revision and an unsigned one",
    expect="the undo to the signed revision admitted (verified, pinned); the undo back to the "
    "unsigned one refused like a new unsigned template: autogen-check-image, no signatures "
    "found (cpol) / the twin's autogen'd validation (ivpol); the signed template kept",
    versions=IVPOL_BEFORE_1_19,
)
@API
@pytest.mark.usefixtures("enforcement")
def test_rollout_undo_to_unsigned_revision(
    api: str,
    request: pytest.FixtureRequest,
    scenarios: Scenarios,
    images: Images,
    cluster: Cluster,
    policy_of: PolicyOf,
    signcheck_run: SigncheckRun,
) -> None:
    """The history of a Deployment is no way around the policy: rolling back to what ran
    before it is checked like a new template. The history was made at session setup:
    revision 1 the signed image by digest, revision 2 (what runs) the unsigned one."""
    ns = _prepared(request, scenarios, api, updates.UNDO)
    signed, unsigned = images.signed, images.unsigned
    # The deployment controller made revision 2's ReplicaSet long ago; kubectl needs it.
    rollouts.wait_revision(cluster, ns, "app", 2, signcheck_run.settings.timeouts.pod_running)
    back = _log(
        request, f"rollout undo Deployment {ns}/app", None, rollouts.undo(cluster, ns, "app")
    )
    admitted = expect.admitted(back, "an undo to the signed revision 1").obj
    _template_verified(admitted, "the undo to revision 1", signed, api, by="digest")
    image = _unsigned_ref(unsigned, api)
    # Explicitly: revision 1 becomes 3 only once the deployment controller has seen the undo.
    refused = _log(
        request,
        f"rollout undo --to-revision=2 Deployment {ns}/app",
        image,
        rollouts.undo(cluster, ns, "app", 2, image),
    )
    policy = policy_of(VARIANT[api])
    _refused_unchanged(cluster, ns, refused, "undo to revision 2", policy, images, by="digest")


@pytest.mark.scenario(
    "UPD-03",
    step="`kubectl label` a verified pod, then `kubectl set image` it to an unsigned image",
    expect="the label admitted, the image and Kyverno's verification record unchanged; the "
    "image switch on the same pod refused: no signatures found (cpol) / named unverified "
    "(ivpol)",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_unrelated_patch_of_verified_pod(
    api: str,
    make_namespace: MakeNamespace,
    admit: Admit,
    admit_patch: Callable[..., Admission],
    images: Images,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """A policy does not get in the way of everyday changes to a verified pod; the refused
    image switch beside it shows the update was judged (ATK-08 does the switch alone)."""
    ns = make_namespace(VARIANT[api])
    signed, unsigned = images.signed, images.unsigned
    pod = expect.verified(
        admit(k8s.pod("pod", ns, signed.by_tag, target.run_id)), "the pod", signed, api
    )
    labelled = expect.admitted(
        admit_patch(ns, "pod", {"metadata": {"labels": {"team": "payments"}}}), "the label"
    )
    assert labelled.obj["metadata"]["labels"].get("team") == "payments", labelled.obj["metadata"]
    expect.verified(labelled, "the labelled pod", signed, api)
    before = expect.annotations_of(pod.obj).get(expect.VERIFY_ANNOTATION)
    after = expect.annotations_of(labelled.obj).get(expect.VERIFY_ANNOTATION)
    assert after == before, f"the verification record changed: {before!r} -> {after!r}"
    switch = {"spec": {"containers": [{"name": "app", "image": unsigned.by_tag}]}}
    expect.denied_unsigned(
        admit_patch(ns, "pod", switch, image=unsigned.by_tag),
        "the switch to an unsigned image",
        policy_of(VARIANT[api]),
        image=unsigned.by_tag,
    )


@pytest.mark.scenario(
    "UPD-04",
    step="`kubectl set image` a signed Deployment to an unsigned image",
    expect="refused: autogen-check-image, no signatures found (cpol) / the twin's autogen'd "
    "validation (ivpol); the template unchanged; a switch to the signed digest admitted",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_set_image_of_signed_deployment(
    api: str,
    request: pytest.FixtureRequest,
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    cluster: Cluster,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """Changing a workload's image is checked like creating it: a verified Deployment cannot
    be pointed at an unsigned image (the pod form of the same switch is ATK-08)."""
    ns = make_namespace(VARIANT[api])
    signed, unsigned = images.signed, images.unsigned
    # No replicas: the switch is judged on the template (WL-01 shows the pods verified).
    manifest = workloads.manifest("Deployment", "app", ns, signed.by_tag, target.run_id)
    manifest["spec"]["replicas"] = 0
    made = expect.admitted(admit(manifest), "the signed Deployment")
    _template_verified(made.obj, "the signed Deployment", signed, api)
    image = _unsigned_ref(unsigned, api)
    refused = _log(
        request,
        f"set image Deployment {ns}/app",
        image,
        rollouts.set_image(cluster, ns, "app", "app", unsigned.by_tag),
    )
    policy = policy_of(VARIANT[api])
    _refused_unchanged(cluster, ns, refused, "set image unsigned", policy, images)
    changed = _log(
        request,
        f"set image Deployment {ns}/app",
        signed.by_digest,
        rollouts.set_image(cluster, ns, "app", "app", signed.by_digest),
    )
    _template_verified(
        expect.admitted(changed, "set image to the signed digest").obj,
        "the switch",
        signed,
        api,
        by="digest",
    )

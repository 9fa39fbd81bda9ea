"""Policy exceptions: an exception written for image A must exempt A and nothing else, not
an unsigned image B that rides in the same pod.

PolicyExceptions are off by default in Kyverno 1.19 (`--enablePolicyException`,
`--exceptionNamespace`); the local target turns them on for a namespace of the run. Where the
cluster's Kyverno does not process them, these scenarios are skipped, saying why. A
ClusterPolicy takes `kyverno.io/v2` exceptions, which exempt a whole pod from a rule: "for
image A" is a condition that every image of the pod is under A's repository. An
ImageValidatingPolicy takes `policies.kyverno.io/v1` exceptions, whose `spec.images`
(EXC-02) it does not read (`pkg/image/verification/evaluator/policy.go` in v1.19.1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fixtures.types import Admit, MakeNamespace, PolicyOf
from signcheck.clients import admission, k8s, oci
from signcheck.clients.k8s import Cluster
from signcheck.kyverno import exceptions
from signcheck.kyverno.versions import IVPOL_BEFORE_1_19
from signcheck.run.resources import Images, namespace_name
from signcheck.run.scenarios import MAIN, Scenarios
from signcheck.suite import expect
from signcheck.suite.session import SigncheckRun
from signcheck.target import Target
from signcheck.verdict.observe import observe

API = pytest.mark.parametrize("api", ["cpol", "ivpol"])
VARIANT = {"cpol": MAIN, "ivpol": "ivpol"}
IMAGES_IGNORED = "https://github.com/kyverno/policies/issues/1530"

Exempt = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="session")
def exception_namespace(cluster: Cluster, target: Target) -> str:
    """The namespace Kyverno takes PolicyExceptions from (made, as the run's, if missing)."""
    found = exceptions.settings(cluster, target)
    if found.namespace is None:
        pytest.skip(found.why_not)
    # `*`: any namespace counts, so one of the run's own.
    name = (
        namespace_name(target.run_id, "exceptions") if found.namespace == "*" else found.namespace
    )
    cluster.create_namespace(name, target.run_id)
    return name


@pytest.fixture
def exempt(cluster: Cluster, enforcement: None) -> Iterator[Exempt]:
    """`exempt(exception)`: create it; every exception made is deleted after the test (a
    cluster's exception namespace may not be the run's)."""
    made: list[dict[str, Any]] = []

    def create(exception: dict[str, Any]) -> None:
        exceptions.create(cluster, exception)
        made.append(exception)

    yield create
    for exception in made:
        exceptions.delete(cluster, exception)


def _pod(ns: str, name: str, target: Target, *images: oci.PushedImage) -> dict[str, Any]:
    pod = k8s.pod(name, ns, images[0].by_tag, target.run_id)
    pod["spec"]["containers"] += [
        {"name": f"c{i}", "image": image.by_tag} for i, image in enumerate(images[1:], 1)
    ]
    return pod


def _only_images_of(repository: str) -> str:
    """CEL: every container image of the pod is under `repository`."""
    return f"object.spec.containers.all(c, c.image.startsWith('{repository}:'))"


def _untouched(result: admission.Admission, what: str, image: oci.PushedImage) -> None:
    """Admitted because exempted: the image left as it was (not pinned), nothing recorded."""
    admitted = expect.admitted(result, what)
    got = admitted.obj["spec"]["containers"][0]["image"]
    assert got == image.by_tag, f"{what} was admitted as {got!r}, not left as {image.by_tag!r}"
    recorded = expect.annotations_of(admitted.obj).get(expect.VERIFY_ANNOTATION)
    assert recorded is None, f"{what} was verified after all: {recorded}"


@pytest.mark.scenario(
    "EXC-01",
    step="A PolicyException for unsigned image A (every image of the pod under A's "
    "repository); a pod with A and an unsigned image B",
    expect="A alone: admitted by the exception, untouched (not pinned, no verification "
    "record); A with B: denied, the pod no longer matches the exception so every image is "
    "verified: no signatures found for A or B, whichever the rule verifies first (cpol) / "
    "no verified signature for A, B (ivpol)",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_exception_for_one_image(
    api: str,
    make_namespace: MakeNamespace,
    admit: Admit,
    exempt: Exempt,
    exception_namespace: str,
    images: Images,
    scenarios: Scenarios,
    cluster: Cluster,
    policy_of: PolicyOf,
    target: Target,
    signcheck_run: SigncheckRun,
) -> None:
    """An exception written for one image exempts pods made of that image only: it is not
    a pass for every other image that shares a pod with it."""
    ns = make_namespace(VARIANT[api])
    policy = policy_of(VARIANT[api])
    a, b = images.unsigned, scenarios.images["exc-unsigned-b"]
    name = f"exc-a-{api}-{target.run_id.rsplit('-', 1)[-1]}"
    if api == "cpol":
        assert policy.rule is not None
        exception = exceptions.cpol_exception(
            name,
            exception_namespace,
            target.run_id,
            policy=policy.name,
            rule=policy.rule,
            pods_in=ns,
            all_images=f"{a.repository}:*",
        )
    else:
        exception = exceptions.ivpol_exception(
            name,
            exception_namespace,
            target.run_id,
            policy=policy.name,
            condition=f"object.metadata.namespace == '{ns}' && {_only_images_of(a.repository)}",
        )
    exempt(exception)
    only_a = _pod(ns, "only-a", target, a)
    exceptions.wait_in_effect(
        cluster,
        only_a,
        f"PolicyException {name} to exempt image A",
        signcheck_run.settings.timeouts.policy_ready,
    )
    # Control: the exception does exempt A.
    _untouched(admit(only_a, a.by_tag), "unsigned image A alone, under its exception", a)
    mixed = admit(_pod(ns, "a-and-b", target, a, b), b.by_tag)
    # A ClusterPolicy rule stops at its first unverified image, in no fixed order: either
    # names a pod the exception no longer covers. An ImageValidatingPolicy names both.
    named = mixed.image if isinstance(mixed, admission.Denied) and api == "cpol" else None
    expect.denied_unsigned(
        mixed,
        "unsigned image B beside exempted image A",
        policy,
        image=named if named in (a.by_tag, b.by_tag) else b.by_tag,
    )


@pytest.mark.scenario(
    "EXC-02",
    step="An ImageValidatingPolicy PolicyException whose spec.images names image A, matching "
    "every pod of the namespace",
    expect="Kyverno v1.19.1 ignores an exception with spec.images for an "
    "ImageValidatingPolicy (its CEL has no exceptions.allowedImages, and since "
    "kyverno/policies#1530 such an exception no longer skips the whole policy): A alone "
    "denied, A with unsigned B denied naming both; an exception without spec.images for the "
    "control pod admits it (exceptions are live). Reported as an INFO finding (the "
    "documented field exempts nothing), never as a pass; B admitted would be a HIGH one",
)
def test_exception_images_field(
    make_namespace: MakeNamespace,
    admit: Admit,
    exempt: Exempt,
    exception_namespace: str,
    images: Images,
    scenarios: Scenarios,
    cluster: Cluster,
    policy_of: PolicyOf,
    target: Target,
    signcheck_run: SigncheckRun,
) -> None:
    """`spec.images` is the exception's own way to name image A: it must exempt A, and only
    A, in a pod that also runs B."""
    ns = make_namespace("ivpol")
    policy = policy_of("ivpol")
    a, b = images.unsigned, scenarios.images["exc-unsigned-b"]
    suffix = target.run_id.rsplit("-", 1)[-1]
    in_ns = f"object.metadata.namespace == '{ns}'"
    exempt(
        exceptions.ivpol_exception(
            f"exc-images-{suffix}",
            exception_namespace,
            target.run_id,
            policy=policy.name,
            condition=in_ns,
            images=[a.by_tag, f"{a.repository}:*"],
        )
    )
    # Made after the first: once it counts, the policy was recompiled with both (Kyverno
    # reconciles the policy from all exceptions its cache holds, in order).
    exempt(
        exceptions.ivpol_exception(
            f"exc-control-{suffix}",
            exception_namespace,
            target.run_id,
            policy=policy.name,
            condition=f"{in_ns} && object.metadata.name == 'control'",
        )
    )
    control = _pod(ns, "control", target, a)
    exceptions.wait_in_effect(
        cluster,
        control,
        "the control PolicyException to count",
        signcheck_run.settings.timeouts.policy_ready,
    )
    _untouched(admit(control, a.by_tag), "image A in the control pod, under its exception", a)
    mixed = admit(_pod(ns, "a-and-b", target, a, b), b.by_tag)
    if isinstance(mixed, admission.Admitted):
        observe(
            "EXC-02",
            "an exception that names image A in spec.images exempts every image of the pod: "
            "unsigned image B was admitted beside A",
            "high",
            "do not use spec.images with an ImageValidatingPolicy: exempt a pod only when "
            "every image of it is the exempted one (EXC-01.ivpol's matchConditions)",
            reference=IMAGES_IGNORED,
            evidence=f"admitted {[c['image'] for c in mixed.obj['spec']['containers']]}",
        )
    expect.denied_unsigned(mixed, "unsigned image B beside image A", policy, image=b.by_tag)
    only_a = admit(_pod(ns, "only-a", target, a), a.by_tag)
    if isinstance(only_a, admission.Denied):
        denial = expect.denied_unsigned(only_a, "image A alone", policy, image=a.by_tag)
        observe(
            "EXC-02",
            "a PolicyException's spec.images exempts nothing from an ImageValidatingPolicy: "
            "Kyverno v1.19.1 skips such an exception altogether, so image A is refused too",
            "info",
            "exempt the image from an ImageValidatingPolicy with an exception without "
            "spec.images whose matchConditions require every image of the pod to be the "
            "exempted one (EXC-01.ivpol), or leave it out of matchImageReferences",
            reference=IMAGES_IGNORED,
            evidence=f"{denial.webhook}: {denial.reason}; the control exception without "
            "spec.images admitted its pod",
        )
    _untouched(only_a, "image A alone, named in spec.images", a)

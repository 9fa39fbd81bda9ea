"""Workloads: pod controllers (through Kyverno's autogen rules), init and ephemeral
containers, and a pod that mixes a signed and an unsigned image."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fixtures.types import Admit, MakeNamespace, PolicyOf
from signcheck.clients import admission, k8s, workloads
from signcheck.clients.admission import Admission
from signcheck.clients.k8s import Cluster
from signcheck.kyverno.versions import IVPOL_BEFORE_1_19
from signcheck.run.resources import Images
from signcheck.run.scenarios import MAIN
from signcheck.suite import expect
from signcheck.suite.session import SigncheckRun
from signcheck.target import Target

API = pytest.mark.parametrize("api", ["cpol", "ivpol"])
VARIANT = {"cpol": MAIN, "ivpol": "ivpol"}


@pytest.mark.scenario(
    "WL-01",
    step="Create a pod controller with an unsigned image, then with a signed one",
    expect="unsigned: denied at admission (cpol: rule autogen-check-image, "
    "autogen-cronjob-check-image for a CronJob; ivpol: its autogen'd validation), no pod; "
    "signed: admitted with the template pinned to the digest, and its pods created with it",
    versions=IVPOL_BEFORE_1_19,
)
@API
@pytest.mark.parametrize("kind", [k.lower() for k in workloads.KINDS])
def test_pod_controller(
    kind: str,
    api: str,
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    cluster: Cluster,
    policy_of: PolicyOf,
    target: Target,
    signcheck_run: SigncheckRun,
) -> None:
    """Kyverno refuses the workload itself, not only the pods it would create (which would
    otherwise fail silently, retried forever by the controller)."""
    kind = next(k for k in workloads.KINDS if k.lower() == kind)
    ns = make_namespace(VARIANT[api])
    signed, unsigned = images.signed, images.unsigned
    expect.denied_unsigned(
        admit(
            workloads.manifest(kind, "unsigned", ns, unsigned.by_tag, target.run_id),
            unsigned.by_tag,
        ),
        f"a {kind} with an unsigned image",
        policy_of(VARIANT[api]),
        image=unsigned.by_tag,
        kind=kind,
    )
    result = expect.admitted(
        admit(workloads.manifest(kind, "signed", ns, signed.by_tag, target.run_id)),
        f"a {kind} with a signed image",
    )
    assert isinstance(result, admission.Admitted)
    pinned = f"{signed.by_tag}@{signed.digest}"
    template = workloads.pod_spec(result.obj)["containers"][0]["image"]
    assert template == pinned, f"the {kind}'s template runs {template!r}, not {pinned!r}"
    if kind == "CronJob":
        # Run it now, as `kubectl create job --from=cronjob/signed` does.
        job = workloads.job_from_cronjob(result.obj, "signed-manual")
        expect.admitted(admit(job), "a Job from the CronJob")
    timeout = signcheck_run.settings.timeouts.pod_running
    phase = "Running" if target.pods_run and kind not in ("Job", "CronJob") else None
    pods = workloads.wait_pods(cluster, ns, "signed", timeout, phase=phase)
    for pod in pods:
        image = pod["spec"]["containers"][0]["image"]
        assert image == pinned, f"pod {pod['metadata']['name']} runs {image!r}, not {pinned!r}"
    assert not cluster.core.list_namespaced_pod(
        ns, label_selector=f"{workloads.WORKLOAD_LABEL}=unsigned"
    ).items, "a pod of the denied workload exists"


@pytest.mark.scenario(
    "WL-02",
    step="A pod whose init container runs an unsigned image",
    expect="denied: no signatures found for the init container's image (cpol) / named "
    "unverified (ivpol); a signed init container admitted",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_init_container(
    api: str,
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """Init containers run code too, before the containers: they are verified as well."""
    ns = make_namespace(VARIANT[api])
    signed, unsigned = images.signed, images.unsigned
    good = k8s.pod("init-signed", ns, signed.by_tag, target.run_id)
    good["spec"]["initContainers"] = [{"name": "init", "image": signed.by_tag}]
    expect.verified(admit(good), "a signed init container", signed, api, container="init")
    bad = k8s.pod("init-unsigned", ns, signed.by_tag, target.run_id)
    bad["spec"]["initContainers"] = [{"name": "init", "image": unsigned.by_tag}]
    expect.denied_unsigned(
        admit(bad, unsigned.by_tag),
        "an unsigned init container",
        policy_of(VARIANT[api]),
        image=unsigned.by_tag,
    )


EPHEMERAL = {"cpol": MAIN, "ivpol": "ivpol-ephemeral"}


@pytest.mark.scenario(
    "WL-03",
    step="Add an ephemeral (debug) container with an unsigned image to a running pod",
    expect="denied: no signatures found (cpol, which covers pods/ephemeralcontainers on its "
    "own) / named unverified (ivpol, which must list pods/ephemeralcontainers); a signed "
    "ephemeral container admitted",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_ephemeral_container(
    api: str,
    make_namespace: MakeNamespace,
    admit: Admit,
    admit_patch: Callable[..., Admission],
    images: Images,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """`kubectl debug` must not be a way around the policy: the ephemeralcontainers
    subresource is verified like a pod."""
    ns = make_namespace(EPHEMERAL[api])
    signed, unsigned = images.signed, images.unsigned
    expect.verified(admit(k8s.pod("pod", ns, signed.by_tag, target.run_id)), "the pod", signed, api)

    def debug(name: str, image: str) -> dict[str, object]:
        return {
            "spec": {
                "ephemeralContainers": [
                    {"name": name, "image": image, "targetContainerName": "app"}
                ]
            }
        }

    expect.verified(
        admit_patch(ns, "pod", debug("debug-signed", signed.by_tag), "ephemeralcontainers"),
        "a signed ephemeral container",
        signed,
        api,
        container="debug-signed",
    )
    expect.denied_unsigned(
        admit_patch(
            ns,
            "pod",
            debug("debug-unsigned", unsigned.by_tag),
            "ephemeralcontainers",
            unsigned.by_tag,
        ),
        "an unsigned ephemeral container",
        policy_of(EPHEMERAL[api]),
        image=unsigned.by_tag,
    )


@pytest.mark.scenario(
    "WL-04",
    step="A pod with one signed and one unsigned container",
    expect="denied, naming the unsigned image: no signatures found (cpol) / named unverified "
    "(ivpol); a pod with two signed containers admitted",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_mixed_pod(
    api: str,
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """One signed container does not vouch for another: every image is verified."""
    ns = make_namespace(VARIANT[api])
    signed, unsigned = images.signed, images.unsigned
    good = k8s.pod("two-signed", ns, signed.by_tag, target.run_id)
    good["spec"]["containers"].append({"name": "second", "image": signed.by_digest})
    result = expect.verified(admit(good), "two signed containers", signed, api)
    expect.verified(result, "two signed containers", signed, api, by="digest", container="second")
    mixed = k8s.pod("mixed", ns, signed.by_tag, target.run_id)
    mixed["spec"]["containers"].append({"name": "second", "image": unsigned.by_tag})
    denial = expect.denied_unsigned(
        admit(mixed, unsigned.by_tag),
        "a pod with a signed and an unsigned container",
        policy_of(VARIANT[api]),
        image=unsigned.by_tag,
    )
    if api == "ivpol":
        # The message names the unsigned image only, not the signed one.
        assert signed.by_tag not in (denial.reason or ""), denial.reason

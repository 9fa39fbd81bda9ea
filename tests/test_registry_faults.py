"""A misbehaving registry: the run's own registry behind a fault-injecting proxy
(`signcheck.artefacts.faultproxy`), one address per fault, so the faults run beside every
other test. Kyverno reaches a registry by the host in the image reference: an image through
the proxy is the same repository named by one of the proxy's addresses, and the variants
`registry-faults` (ClusterPolicy) and `ivpol-registry-faults` (ImageValidatingPolicy) cover
those addresses.

A registry that is slow or down must make Kyverno refuse (fail-closed), and the suite must
report it as the environment, never as a verdict on the image: these tests pass when that is
exactly what happens, consuming the expected environment problem instead of stopping the run.
Every fault has the same image through the proxy's faithful address admitted beside it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from fixtures.types import Admit, MakeNamespace, PolicyOf
from signcheck.artefacts import faultproxy
from signcheck.artefacts.faultproxy import FaultProxy
from signcheck.clients import burst, k8s, oci
from signcheck.clients.admission import Admission, Admitted
from signcheck.clients.k8s import Cluster
from signcheck.errors import RegistryUnavailable, WebhookUnavailable
from signcheck.kyverno import cpol, ivpol
from signcheck.kyverno.versions import IVPOL_BEFORE_1_19
from signcheck.report import catalogue
from signcheck.report.summary import admission_record
from signcheck.run.resources import Images, namespace_name
from signcheck.run.scenarios import PolicyRef
from signcheck.suite import expect
from signcheck.suite.session import SigncheckRun
from signcheck.suite.stash import ADMISSIONS, NAMESPACE
from signcheck.target import Target

API = pytest.mark.parametrize("api", ["cpol", "ivpol"])
VARIANT = {"cpol": "registry-faults", "ivpol": "ivpol-registry-faults"}
SLOW = "REG-01"


@dataclass(frozen=True)
class SlowAdmission:
    namespace: str
    image: oci.PushedImage
    """The signed image, named through the slow address."""
    result: Future[burst.Timed]


@dataclass(frozen=True)
class Faults:
    proxy: FaultProxy
    slow: SlowAdmission | None
    """Started with the first of these tests when REG-01 is selected, judged by REG-01 at
    the end of the run: the wait for the webhook's timeout is spent on the other tests."""


def _selected(session: pytest.Session, scenario: str) -> bool:
    return any(
        (sid := catalogue.scenario_id(item)) is not None and sid.split(".")[0] == scenario
        for item in session.items
    )


def _start_slow(
    proxy: FaultProxy, target: Target, cluster: Cluster, images: Images, run: SigncheckRun
) -> SlowAdmission:
    variant = VARIANT["ivpol"]
    ns = namespace_name(target.run_id, "reg-01-slow-registry")
    cluster.create_namespace(ns, target.run_id, labels={cpol.VARIANT_LABEL: variant})
    cpol.wait_namespace_seen(cluster, ns, target.run_id, run.settings.timeouts.policy_ready)
    image = proxy.image("slow", images.signed)
    create = burst.Create("signed", k8s.pod("slow", ns, image.by_tag, target.run_id), image.by_tag)
    api = burst.pods_api(target.kubeconfig, target.context, 1)
    return SlowAdmission(
        ns, image, burst.in_background(lambda: burst.create_pod(api, create, dry_run=False))
    )


@pytest.fixture(scope="session")
def registry_faults(
    request: pytest.FixtureRequest,
    target: Target,
    cluster: Cluster,
    images: Images,
    policy_of: PolicyOf,
    signcheck_run: SigncheckRun,
    enforcement: None,
) -> Iterator[Faults]:
    """The proxy, once per test process (its log is per process too); session-scoped so the
    late REG-01 finds the admission its first use started."""
    reason = faultproxy.unavailable(target)
    if reason:
        pytest.skip(reason)
    for variant in VARIANT.values():
        policy_of(variant)  # skips, saying why, when the run did not apply it
    proxy = faultproxy.for_target(target, slow_seconds=faultproxy.SLOW_SECONDS).start()
    slow = None
    try:
        if _selected(request.session, SLOW):
            slow = _start_slow(proxy, target, cluster, images, signcheck_run)
        yield Faults(proxy, slow)
    finally:
        if slow is not None:
            # Its answer is due at the webhook's timeout; never leave the thread running.
            slow.result.exception(timeout=faultproxy.SLOW_SECONDS + 30)
        proxy.stop()


def _pod(ns: str, name: str, image: str, target: Target) -> dict[str, Any]:
    return k8s.pod(name, ns, image, target.run_id)


def _never_stored(cluster: Cluster, ns: str, name: str) -> None:
    try:
        cluster.core.read_namespaced_pod(name, ns)
    except ApiException as err:
        if err.status == 404:
            return
        raise
    raise AssertionError(f"pod {ns}/{name} exists: the refused request was stored after all")


def _control(
    faults: Faults, admit: Admit, ns: str, image: oci.PushedImage, api: str, target: Target
) -> None:
    """The same signed image through the proxy's faithful address: admitted and verified,
    so what the fault does is the fault's doing, not the proxy's or the policy's."""
    through = faults.proxy.image("pass", image)
    expect.verified(
        admit(_pod(ns, "through-proxy", through.by_tag, target)),
        "the signed image through the proxy's faithful address",
        through,
        api,
    )


@pytest.mark.scenario(
    "REG-02",
    step="The registry is down: its address refuses connections",
    expect="denied fail-closed by the policy's webhook (cpol: mutate.kyverno.svc-fail, rule "
    "check-image; ivpol: its digest-pinning ivpol.mutate.kyverno.svc-fail-finegrained-<policy>) "
    "with the registry's error (connection refused, naming the address), classified as an "
    "environment problem (verdict 'environment: registry'), never as a signature verdict, and "
    "no pod stored; the same signed image through the proxy's faithful address admitted and "
    "pinned beside it",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_registry_down_fails_closed(
    api: str,
    registry_faults: Faults,
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    cluster: Cluster,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """A registry that cannot be reached refuses the pod: Kyverno never admits what it could
    not verify, and the report names the registry, not the image."""
    ns = make_namespace(VARIANT[api])
    policy = policy_of(VARIANT[api])
    _control(registry_faults, admit, ns, images.signed, api, target)
    down = registry_faults.proxy.image("down", images.signed)
    result = admit(_pod(ns, "registry-down", down.by_tag, target), down.by_tag)
    denial = expect.environment_problem(result, "the signed image from a registry that is down")
    webhook = expect.WEBHOOK if api == "cpol" else ivpol.mutate_webhook(policy.name)
    assert (denial.webhook, denial.policy, denial.rule) == (webhook, policy.name, policy.rule), (
        denial
    )
    assert denial.verdict == "environment: registry" and denial.registry_wide, denial
    reason = denial.reason or ""
    assert "connection refused" in reason and registry_faults.proxy.host("down") in reason, reason
    # What any other scenario would have said on meeting it: the registry, and the run stops.
    with pytest.raises(RegistryUnavailable, match="could not read the registry"):
        expect.denied_unsigned(result, "the image", policy, image=down.by_tag)
    _never_stored(cluster, ns, "registry-down")


def _swap_case(
    registry: oci.OciClient, signed: oci.PushedImage, tag: str, *, signed_first: bool
) -> tuple[oci.PushedImage, oci.PushedImage]:
    """A tag in the signed image's repository answered with (first, later): the signed
    manifest and other, never-signed content pushed there, in that order or reversed."""
    raw, media_type, _ = registry.manifest(signed.repository, signed.digest)

    def signed_at(t: str) -> oci.PushedImage:
        # The same bytes under another tag: the same digest, so the same signature.
        registry.put_manifest(signed.repository, t, raw, media_type)
        return replace(signed, tag=t)

    def unsigned_at(t: str) -> oci.PushedImage:
        return registry.push_image(signed.repository, t, nonce="swap-" + secrets.token_hex(8))

    if signed_first:
        return signed_at(tag), unsigned_at(f"{tag}-later")
    return unsigned_at(tag), signed_at(f"{tag}-later")


@pytest.mark.scenario(
    "REG-03",
    step="The registry answers a tag with another manifest the second time (the "
    "time-of-check/time-of-use class of CVE-2022-47633), signed first or unsigned first",
    expect="an admitted pod runs exactly the digest that was verified, and the never-signed "
    "digest is never admitted. With Kyverno v1.19.1: cpol resolves the tag once and pins what "
    "cosign verified (signed first: admitted, pinned to the signed digest and recorded pass; "
    "unsigned first: denied, no signatures found); ivpol pins first, then verifies the pinned "
    "digest (signed first: denied, no verified signature for <tag>@<unsigned digest>; "
    "unsigned first: admitted, pinned to the signed digest). The proxy answers the other "
    "digest when asked again; each API's admitted order is the control of its refused one",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_registry_swaps_manifest(
    api: str,
    registry_faults: Faults,
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    registry_client: oci.OciClient,
    policy_of: PolicyOf,
    target: Target,
    record_property: Callable[[str, object], None],
) -> None:
    """A registry (or a man in the middle) that tells the verifier one digest and the pinner
    another cannot get an unverified digest admitted: what runs is what was verified."""
    proxy = registry_faults.proxy
    ns = make_namespace(VARIANT[api])
    policy = policy_of(VARIANT[api])
    signed = images.signed
    # No separate control: per API one order is admitted through the same address and policy.
    seen: dict[str, list[str | None]] = {}
    for order, signed_first in (("signed-first", True), ("unsigned-first", False)):
        first, later = _swap_case(
            registry_client, signed, f"{signed.tag}-swap-{api}-{order}", signed_first=signed_first
        )
        proxy.swap_tag(first, later)
        asked = proxy.image("swap", first)
        result = admit(_pod(ns, order, asked.by_tag, target), asked.by_tag)
        seen[order] = [e.digest for e in proxy.served("swap", first) if e.reference == first.tag]
        unsigned = later if signed_first else first
        _pinned_is_verified(result, f"the tag {order}", asked, signed.digest, unsigned.digest)
        expected_admitted = signed_first == (api == "cpol")
        if expected_admitted:
            expect.verified(
                result, f"the tag answered {order}", replace(asked, digest=signed.digest), api
            )
        else:
            _denied_unsigned_pin(result, f"the tag answered {order}", policy, asked, unsigned, api)
        assert proxy.ask("swap", first) == later.digest, (
            f"the proxy did not answer the tag {order} with the other digest when asked again"
        )
    record_property("swap_tag_answers", seen)


def _pinned_is_verified(
    result: Admission, what: str, asked: oci.PushedImage, signed: str, unsigned: str
) -> None:
    """The property itself, before the exact outcome: an admission pins the signed digest."""
    if not isinstance(result, Admitted):
        return
    containers = result.obj.get("spec", {}).get("containers") or []
    image = containers[0].get("image") if containers else None
    assert image != f"{asked.by_tag}@{unsigned}", (
        f"{what}: ADMITTED pinned to the never-signed digest {unsigned}: the registry's second "
        "answer was pinned, not the verified one (CVE-2022-47633 class)"
    )
    assert image == f"{asked.by_tag}@{signed}", f"{what}: admitted as {image!r}"


def _denied_unsigned_pin(
    result: Admission,
    what: str,
    policy: PolicyRef,
    asked: oci.PushedImage,
    unsigned: oci.PushedImage,
    api: str,
) -> None:
    # The ClusterPolicy names the tag it was asked for; the ImageValidatingPolicy the tag
    # pinned to the digest it then verified.
    image = asked.by_tag if api == "cpol" else f"{asked.by_tag}@{unsigned.digest}"
    expect.denied_unsigned(result, what, policy, image=image)


@pytest.mark.scenario(
    SLOW,
    step="A registry slower than the policy's webhook timeout (the ImageValidatingPolicy "
    f"variant's own {faultproxy.POLICY_TIMEOUT_SECONDS} s)",
    expect="denied by the API server, fail-closed, when the digest-pinning webhook "
    "ivpol.mutate.kyverno.svc-fail-finegrained-<policy> does not answer within its "
    f"{faultproxy.POLICY_TIMEOUT_SECONDS} s "
    "(the live webhook's timeoutSeconds): classified as an environment problem naming the "
    "timeout (verdict 'environment: webhook timed out'), never as a signature verdict; "
    "refused after the timeout and before the registry answered any of Kyverno's requests; "
    "no pod stored; the same signed image through the faithful address admitted right after",
    versions=IVPOL_BEFORE_1_19,
)
@pytest.mark.late
def test_slow_registry_fails_closed(
    request: pytest.FixtureRequest,
    registry_faults: Faults,
    admit: Admit,
    images: Images,
    cluster: Cluster,
    policy_of: PolicyOf,
    target: Target,
) -> None:
    """A registry slower than the webhook's timeout makes the API server refuse the pod
    (failurePolicy Fail) instead of admitting it unverified, and the report says it was the
    timeout. The admission started with this module's first test and ran beside the rest.

    Tried on the ImageValidatingPolicy: its timeout is its own webhook's. A ClusterPolicy's
    `webhookTimeoutSeconds` only raises the timeout of the webhook it shares with every
    fail-closed ClusterPolicy (the largest wins: the seed's 30 s), and in Kyverno v1.19.1 the
    one way to a webhook of its own (`webhookConfiguration.matchConditions`) also takes it
    off image verification, so its case would cost 30 s of the run."""
    slow = registry_faults.slow
    assert slow is not None, "the slow admission was not started"
    request.node.stash[NAMESPACE] = slow.namespace
    policy = policy_of(VARIANT["ivpol"])
    timed = slow.result.result(timeout=faultproxy.SLOW_SECONDS + 30)
    request.node.stash.setdefault(ADMISSIONS, []).append(
        admission_record(f"create Pod {slow.namespace}/slow", slow.image.by_tag, timed.result)
    )
    what = "the signed image from a registry slower than the webhook's timeout"
    denial = expect.environment_problem(timed.result, what)
    webhook = ivpol.mutate_webhook(policy.name)
    live = _live_timeout(cluster, webhook)
    assert denial.webhook == webhook, denial
    assert denial.verdict == "environment: webhook timed out", denial.verdict
    assert denial.webhook_timeout_seconds == live == faultproxy.POLICY_TIMEOUT_SECONDS, (
        f"timeout named {denial.webhook_timeout_seconds}, live webhook {live}"
    )
    refused_at = timed.started + timed.seconds
    assert live <= timed.seconds < faultproxy.SLOW_SECONDS, (
        f"refused after {timed.seconds:.2f}s: not at the webhook's {live} s timeout"
    )
    held = [e for e in registry_faults.proxy.served("slow") if e.started <= refused_at]
    assert held, "Kyverno never asked the slow registry: the timeout is not the registry's"
    answered = [e for e in held if e.seconds is not None and e.started + e.seconds < refused_at]
    assert not answered, f"the registry answered before the refusal: {answered}"
    with pytest.raises(WebhookUnavailable, match=f"within its {live} s timeout"):
        expect.denied_unsigned(timed.result, what, policy, image=slow.image.by_tag)
    _never_stored(cluster, slow.namespace, "slow")
    # Right after it, the same image through the faithful address: the fault stayed its own.
    _control(registry_faults, admit, slow.namespace, images.signed, "ivpol", target)


def _live_timeout(cluster: Cluster, webhook: str) -> int | None:
    for config in cluster.admreg.list_mutating_webhook_configuration().items:
        for hook in config.webhooks or []:
            if hook.name == webhook:
                return int(hook.timeout_seconds)
    return None

"""Background scanning: what a cluster reports about pods that were verified at admission
once their signature is gone, under policies with `background: true` (the seed's policy has
it off). Admission cannot take back a pod it admitted; the PolicyReport is where the change
must show.

The pods are admitted at session setup and the signature removed there, once a background
scan passed them (`signcheck.run.background`); the next scans run while the other tests do.
"""

from __future__ import annotations

import pytest

from fixtures.types import PolicyOf
from signcheck.clients import oci
from signcheck.clients.k8s import Cluster
from signcheck.errors import EnvironmentNotReady
from signcheck.kyverno.versions import IVPOL_TRUST_ROOT
from signcheck.run import background
from signcheck.run.resources import Images
from signcheck.run.scenarios import Scenarios
from signcheck.suite.stash import ADMISSIONS, NAMESPACE
from signcheck.verdict.observe import observe

BOUND = 60.0
"""The longest background scan interval the run waits for (seconds)."""
STALE_ISSUE = "https://github.com/kyverno/kyverno/issues/7525"
STALE_GAP = (
    "a revoked signature is reported as pass: the reports controller answers a ClusterPolicy's "
    "background scan from its verification cache (keyed by policy, rule and image, kept "
    "--imageVerifyCacheTTLDuration, 60m by default) when it scans more often than that, so a "
    "pod whose signature was removed stays `pass` with 'verified from cache'"
)
STALE_FIX = (
    "set `useCache: false` on the verifyImages rules of background policies (BG-01.nocache "
    "shows the next scan then reports fail), or start the reports controller with "
    "--imageVerifyCacheEnabled=false, or keep --backgroundScanInterval at least as long as "
    "--imageVerifyCacheTTLDuration; an ImageValidatingPolicy is not affected (BG-01.ivpol)"
)


@pytest.mark.scenario(
    "BG-01",
    step="A signed pod admitted under a `background: true` policy; its signature removed from "
    "the registry after a background scan passed it",
    expect="the PolicyReport turns to fail for that pod on the next background scan (cpol: "
    "failed to verify image <repo>@<digest>: ... no signatures found; ivpol: no verified "
    "signature for <repo>:<tag>@<digest>); a pod whose signature stays is pass in the same scan",
    versions=(IVPOL_TRUST_ROOT,),
)
@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            "cpol",
            marks=pytest.mark.expect(
                "fail on the next scan. Kyverno v1.19.1's reports controller instead keeps "
                "`pass` ('verified from cache') while its verification cache holds the image "
                "(60m) if it scans more often: reported as a MEDIUM finding (kyverno#7525) "
                "with its remediation, never as a pass"
            ),
        ),
        "nocache",
        "ivpol",
    ],
)
@pytest.mark.late
@pytest.mark.usefixtures("enforcement")
def test_signature_removed_after_admission(
    case: str,
    request: pytest.FixtureRequest,
    scenarios: Scenarios,
    images: Images,
    cluster: Cluster,
    registry_client: oci.OciClient,
    policy_of: PolicyOf,
) -> None:
    """A signature that is withdrawn (a compromised build, a revoked release) must show on a
    running workload: admission judged it once, the background scan judges it again.
    `nocache` is the same policy's second rule, with `useCache: false`."""
    record = scenarios.background
    variant, rule = background.CASES[case]
    if not record:
        pytest.skip("--seed-exact-policy: the background variants are not applied")
    policy = policy_of(variant)
    if variant in record["errors"]:
        raise EnvironmentNotReady(f"BG-01 could not be set up: {record['errors'][variant]}")
    ns = record["namespaces"][variant]
    request.node.stash[NAMESPACE] = ns
    pods = record["pods"][variant]
    request.node.stash[ADMISSIONS] = list(pods.values())
    interval = record.get("interval")
    if interval is None or interval > BOUND:
        pytest.skip(
            f"the reports controller scans every {interval or 'unknown'} s (its "
            f"--backgroundScanInterval; Kyverno's default is 1h): the next scan is beyond "
            f"this run's {BOUND:g} s"
        )
    revoked: oci.PushedImage = scenarios.images[background.REVOKED]
    kept = images.signed
    refs = {"kept": f"{kept.by_tag}@{kept.digest}", "revoked": f"{revoked.by_tag}@{revoked.digest}"}
    for role, ref in refs.items():
        assert pods[role].get("admitted") and pods[role]["images"] == [ref], pods[role]
    # The scan before the removal passed both (the setup waited for it).
    before = {k: v for k, v in record["before"][variant].items() if k.endswith(f"/{rule or '*'}")}
    assert [v["result"] for v in before.values()] == ["pass"] * len(background.ROLES), before
    assert registry_client.signature(revoked.repository, revoked.digest) is None, (
        f"the signature of {revoked.by_digest} is still in the registry"
    )
    timeout = interval + background.AGGREGATION + 30
    after = background.wait_rescanned(cluster, ns, policy.name, rule, record["revoked_at"], timeout)
    assert after["kept"]["result"] == "pass", f"the pod whose signature stays: {after['kept']}"
    got = after["revoked"]
    if case == "cpol" and got["result"] == "pass" and got["message"] == "verified from cache":
        observe(
            "BG-01.cpol",
            STALE_GAP,
            "medium",
            STALE_FIX,
            reference=STALE_ISSUE,
            evidence=f"PolicyReport of Pod {ns}/revoked: {got} (signature removed at "
            f"{record['revoked_at']:.1f}, image {refs['revoked']})",
        )
    if policy.api == "ivpol":
        message = f"no verified signature for {refs['revoked']}"
    else:
        # A ClusterPolicy names a pinned image by repository and digest only.
        message = (
            f"failed to verify image {revoked.by_digest}: .attestors[0].entries[0].keys: "
            "no signatures found"
        )
    assert (got["result"], got["message"]) == ("fail", message), (
        f"the pod whose signature was removed is reported {got} after a background scan, "
        f"expected fail: {message}"
    )

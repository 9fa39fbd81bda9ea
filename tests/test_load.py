"""Under load: pod creates arriving together, signed and unsigned mixed, the way a rollout of
many workloads (or Connaisseur's load test) hits admission. Not one unsigned pod may slip
through while Kyverno is busy, and no signed one may be refused for being in a crowd.

The creates are server-side dry runs: each goes through every admission webhook exactly as a
create does (Kyverno's webhooks declare `sideEffects: NoneOnDryRun`, so the API server calls
them, and Kyverno verifies as for any request, skipping only its admission reports), and
comes back as the object the API server would store, pinned digest and Kyverno's records
included; nothing is stored, so a real node does not start dozens of containers mid-run. The
latency figures are `python -m benchmarks.load`'s (100 real creates at 20 in parallel).

The suite's burst is the seed's ClusterPolicy's, in two waves (the second meets Kyverno's
verification cache, the path ATK-02 shows is keyed by tag). The ImageValidatingPolicy verifies
every admission afresh, about twice the CPU of one here, so its burst (same promise, same
check, exit 1 on a slip) is the benchmark's, keeping the run within its time budget.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fixtures.types import MakeNamespace, PolicyOf
from signcheck.clients import burst, k8s
from signcheck.clients.oci import PushedImage
from signcheck.report.summary import admission_record
from signcheck.run.resources import Images
from signcheck.run.scenarios import MAIN
from signcheck.suite import expect
from signcheck.suite.stash import ADMISSIONS
from signcheck.target import Target

PARALLEL = 20
CREATES = 2 * PARALLEL


def mixed(images: Images, count: int) -> list[tuple[str, PushedImage, str]]:
    """(role, image, by) for `count` creates, alternating signed and unsigned, each by tag
    and by digest in turn (a tag is resolved and pinned, a digest checked as it is)."""
    cycle = [
        ("signed", images.signed, "tag"),
        ("unsigned", images.unsigned, "tag"),
        ("signed", images.signed, "digest"),
        ("unsigned", images.unsigned, "digest"),
    ]
    return [cycle[i % len(cycle)] for i in range(count)]


@pytest.mark.scenario(
    "LOAD-01",
    step=f"{CREATES} pod creates {PARALLEL} at a time under the seed's policy, signed and "
    "unsigned mixed (by tag and by digest), through admission as server-side dry runs",
    expect="every unsigned pod denied by check-image through mutate.kyverno.svc-fail: no "
    "signatures found; every signed pod admitted pinned to its verified digest and recorded "
    "pass; a miss is listed with its create, all at once",
)
def test_mixed_burst(
    make_namespace: MakeNamespace,
    images: Images,
    policy_of: PolicyOf,
    target: Target,
    request: pytest.FixtureRequest,
    record_property: Callable[[str, object], None],
) -> None:
    """Enforcement holds under a burst of concurrent creates: the signed ones are the
    controls of the unsigned ones, in the same burst."""
    ns = make_namespace(MAIN)
    policy = policy_of(MAIN)
    plan = mixed(images, CREATES)
    creates = []
    for i, (role, image, by) in enumerate(plan):
        ref = image.by_tag if by == "tag" else image.by_digest
        creates.append(burst.Create(role, k8s.pod(f"{role}-{i}", ns, ref, target.run_id), ref))
    client = burst.pods_api(target.kubeconfig, target.context, PARALLEL)
    try:
        timed = burst.burst(client, creates, parallel=PARALLEL, dry_run=True)
    finally:
        client.api_client.close()
    problems = []
    for t, (role, image, by) in zip(timed, plan, strict=True):
        what = f"{t.create.pod['metadata']['name']} ({role}, by {by})"
        try:
            if role == "signed":
                expect.verified(t.result, what, image, "cpol", by=by)
            else:
                expect.denied_unsigned(t.result, what, policy, image=t.create.image)
        except AssertionError as err:
            problems.append(str(err).splitlines()[0])
            request.node.stash.setdefault(ADMISSIONS, []).append(
                admission_record(f"dry-run Pod {what}", t.create.image, t.result)
            )
    slowest = max(t.seconds for t in timed)
    record_property("burst", f"{len(timed)} creates at {PARALLEL} in parallel")
    record_property("slowest_admission_seconds", round(slowest, 3))
    assert not problems, f"{len(problems)} of {len(timed)} creates broke the promise:\n" + (
        "\n".join(problems)
    )

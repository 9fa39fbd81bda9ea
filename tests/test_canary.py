"""The canary, before every scenario: enforcement works at all in a fresh namespace of the run.

When it does not, the run inspects the cluster once and names the cause; the scenarios that
judge admission are then reported as `environment` with that cause (see
`fixtures.session.enforcement`) instead of each running into the same wall.
"""

from __future__ import annotations

import pytest

from signcheck.diagnose.canary import CanaryResult
from signcheck.errors import EnforcementBroken
from signcheck.suite.stash import ADMISSIONS, NAMESPACE


@pytest.mark.canary
@pytest.mark.seed_only
@pytest.mark.scenario(
    "CANARY-01",
    step="Before any scenario: the signed image admitted and verified, an unsigned image "
    "denied, in a fresh namespace of the run",
    expect="signed: admitted, pinned to its digest, verification recorded; unsigned: denied "
    "by the run's policy, no signatures found. Otherwise one line naming the cause (fail when "
    "the cluster's configuration lets the unsigned image in, environment when the run cannot "
    "judge) and every dependent scenario reported as environment with that cause",
)
def test_enforcement_canary(canary: CanaryResult, request: pytest.FixtureRequest) -> None:
    """A broken environment cannot pass as "denied", and a cluster that lets an unsigned image
    in through its configuration is named once, with what to change."""
    request.node.stash[ADMISSIONS] = canary.admissions
    request.node.stash[NAMESPACE] = canary.namespace  # for the evidence when it fails
    diagnosis = canary.diagnosis
    if diagnosis is None:
        assert canary.ok
        return
    if diagnosis.kind == "fail":
        pytest.fail(
            f"the cluster admitted the canary's unsigned image: {diagnosis.cause}\n"
            f"fix: {diagnosis.remediation}\nchecked: {'; '.join(diagnosis.checked)}",
            pytrace=False,
        )
    raise EnforcementBroken(
        f"the canary could not be judged: {diagnosis.cause}", f"fix: {diagnosis.remediation}"
    )

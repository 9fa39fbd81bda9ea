"""The seed's optional step: Policy Reporter, which shows Kyverno's PolicyReports. With
`--policy-reporter` the run installs it (Helm) and this checks the reports it shows: the
signed pod's admission appears as a `pass` of the run's policy and rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from signcheck.clients.admission import Admission
from signcheck.clients.k8s import Cluster
from signcheck.kyverno import policyreports
from signcheck.run.resources import SessionState
from signcheck.suite.session import SigncheckRun

REPORT_TIMEOUT = 90.0
"""The reports-controller aggregates admission results some seconds after the request."""


@pytest.mark.scenario(
    "SEED-09",
    step="Install Policy Reporter: it shows the run's results",
    expect="with --policy-reporter: the signed pod's admission is a pass of the run's policy "
    "and rule, the denied pod appears in no report (skipped without --policy-reporter)",
)
def test_policy_reports_show_the_signed_pod(
    signcheck_run: SigncheckRun,
    cluster: Cluster,
    run_state: SessionState,
    namespace: str,
    admit: Callable[..., Admission],
    pod_for: Callable[[str, str], dict[str, Any]],
) -> None:
    """What the seed's optional Policy Reporter shows matches what admission decided."""
    if not signcheck_run.settings.policy_reporter:
        pytest.skip("Policy Reporter not requested (--policy-reporter): the seed's optional step")
    signed = admit(pod_for("pod", run_state.images.signed.by_tag))
    assert signed.admitted, f"the signed pod was denied: {signed}"
    unsigned = admit(pod_for("pod2", run_state.images.unsigned.by_tag))
    assert not unsigned.admitted, "the unsigned pod was admitted"
    result = policyreports.wait_for_result(
        cluster, namespace, run_state.policy_name, "Pod/pod", REPORT_TIMEOUT
    )
    assert (result.rule, result.result) == (run_state.rule_name, "pass"), result
    # Control: a denied pod never exists, so no report speaks of it.
    about_pod2 = [r for r in policyreports.results(cluster, namespace) if "Pod/pod2" in r.resources]
    assert about_pod2 == [], about_pod2

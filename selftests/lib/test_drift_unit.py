"""The pieces of the UPD and BG families that need no cluster: the background scan interval
as Kyverno's flags say it, what the environment gives the reports controller (out of cluster
and through the chart), and the variants the run applies for BG-01."""

from __future__ import annotations

from pathlib import Path

import pytest

from signcheck.kyverno import cpol, ivpol
from signcheck.localenv import incluster
from signcheck.localenv.kyvernoprep import reports_view_binding
from signcheck.localenv.services.kyverno import (
    BACKGROUND_SCAN_INTERVAL,
    REPORTS_SA,
    ReportsController,
)
from signcheck.run import background, drift
from signcheck.timeouts import Timeouts
from signcheck.tools import helm, pins


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5.0), ("1h", 3600.0), ("1h0m0s", 3600.0), ("1m30s", 90.0), ("500ms", 0.5)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert background.go_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5 s", "s", "1x", "1h and more"])
def test_not_go_durations(text: str) -> None:
    assert background.go_duration(text) is None


def test_out_of_cluster_reports_controller_scans_every_interval(tmp_path: Path) -> None:
    controller = ReportsController(
        tmp_path,
        tmp_path / "reports-controller",
        Timeouts(),
        tmp_path / "kubeconfig",
        run_id="r",
        insecure_registry=True,
        pull_secret=None,
        ca_bundle=None,
        ready=lambda: True,
    )
    assert f"--backgroundScanInterval={BACKGROUND_SCAN_INTERVAL}" in controller.argv()
    assert background.go_duration(BACKGROUND_SCAN_INTERVAL) == 15.0


def test_reports_service_account_may_read_what_policies_match() -> None:
    """The chart's view binding, to the role `view` aggregates its core rules from."""
    binding = reports_view_binding()
    assert binding["roleRef"]["name"] == "system:aggregate-to-view"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": REPORTS_SA, "namespace": "kyverno"}
    ]


def test_background_variants_render_background_on() -> None:
    assert {variant for variant, _ in background.CASES.values()} == set(background.VARIANTS)
    assert all(drift.is_drift_variant(v) for v in background.VARIANTS)
    assert not drift.is_drift_variant("ivpol")
    iv = ivpol.render(ivpol.IvpolSpec(run_id="r", image_references=("x/*",), public_keys=("k",)))
    assert iv["spec"]["evaluation"] == {"background": {"enabled": False}}
    on = ivpol.IvpolSpec(run_id="r", image_references=("x/*",), public_keys=("k",), background=True)
    assert ivpol.render(on)["spec"]["evaluation"] == {"background": {"enabled": True}}


def _ports(deployment: dict[str, object]) -> set[int]:
    spec = deployment["spec"]["template"]["spec"]  # type: ignore[index]
    return {p["containerPort"] for c in spec["containers"] for p in c.get("ports") or []}


def test_chart_runs_the_reports_controller_beside_the_admission_controller() -> None:
    """On the real node both controllers share the node's network (they must reach the
    registry at its loopback address): their ports, which are then host ports, must differ,
    or the scheduler never places the second pod; and the reports controller scans every
    15 s."""
    for name in ("helm", "kyverno"):
        if not pins.resolve(name).ok:
            pytest.skip(f"{name} not built")
    docs = helm.Helm.pinned().template(incluster.chart_values("127.0.0.1:5999"))
    deployments = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Deployment"}
    admission = deployments["kyverno-admission-controller"]
    reports = deployments["kyverno-reports-controller"]
    spec = reports["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    assert not _ports(admission) & _ports(reports), (_ports(admission), _ports(reports))
    (ctr,) = spec["containers"]
    assert f"--backgroundScanInterval={BACKGROUND_SCAN_INTERVAL}" in ctr["args"]


def test_nocache_rule_is_the_same_rule_without_the_cache() -> None:
    policy = cpol.render_cluster_policy(
        cpol.PolicySpec(run_id="r", image_references=("x/*",), public_keys=("k",), background=True)
    )
    background.add_nocache_rule(policy)
    background.add_nocache_rule(policy)  # once only
    first, second = policy["spec"]["rules"]
    assert (first["name"], second["name"]) == ("check-image", background.NOCACHE_RULE)
    assert "useCache" not in first["verifyImages"][0]
    assert second["verifyImages"][0].pop("useCache") is False
    assert {**second, "name": first["name"]} == first

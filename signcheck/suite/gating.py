"""Applies a scenario's version gates (`signcheck.verdict.gates`) to a failed test's report."""

from __future__ import annotations

import json
from typing import Any

import pytest

from signcheck import redact
from signcheck.report import catalogue
from signcheck.suite.session import find_run
from signcheck.verdict.gates import Before, gate_for

EVIDENCE_CHARS = 1500


def kyverno_version(config: pytest.Config) -> str | None:
    """The Kyverno the run tests, as the target reported it (the local build's version, or
    what preflight read from the cluster)."""
    run = find_run(config)
    target = run.booted_target if run is not None else None
    return target.versions.get("kyverno") if target is not None else None


def apply(
    item: pytest.Item,
    report: pytest.TestReport,
    excinfo: pytest.ExceptionInfo[BaseException],
    add_property: Any,
) -> bool:
    """When a gate of the test's scenario applies to this Kyverno and describes the failure,
    rewrite the report as the gate's class; True if it did."""
    marker = item.get_closest_marker("scenario")
    gates: tuple[Before, ...] = tuple(marker.kwargs.get("versions", ())) if marker else ()
    if not gates or report.when != "call":
        return False
    failure = str(excinfo.value) or excinfo.exconly()
    callspec = getattr(item, "callspec", None)
    version = kyverno_version(item.config)
    gate = gate_for(gates, version, callspec.id if callspec else None, failure)
    if gate is None or version is None:
        return False
    scenario = catalogue.scenario_id(item) or item.nodeid
    evidence = redact.redact(failure[:EVIDENCE_CHARS])
    if gate.outcome == "finding":
        finding = gate.finding(scenario, version, evidence)
        finding.nodeid = item.nodeid
        report.outcome = "passed"
        report.longrepr = None
        add_property(item, report, "finding", redact.redact(json.dumps(finding.as_dict())))
        add_property(item, report, "finding_severity", finding.severity)
        add_property(item, report, "finding_remediation", redact.redact(finding.remediation))
    else:
        cause = redact.redact(gate.cause(version))
        add_property(item, report, "environment_error", cause)
        report.longrepr = f"signcheck: environment: {cause}\n{evidence}"
    add_property(item, report, "version_gate", gate.summary())
    return True

"""What a scenario's version gates (`signcheck.verdict.gates`) make of a failed test."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from signcheck import redact
from signcheck.report import catalogue
from signcheck.suite.session import find_run
from signcheck.verdict.gates import Before, gate_for
from signcheck.verdict.model import Finding

EVIDENCE_CHARS = 1500


def kyverno_version(config: pytest.Config) -> str | None:
    """The Kyverno the run tests, as the target reported it (the local build's version, or
    what preflight read from the cluster)."""
    run = find_run(config)
    target = run.booted_target if run is not None else None
    return target.versions.get("kyverno") if target is not None else None


@dataclass(frozen=True)
class Gated:
    """What a version gate makes of a failed test: a finding, or an environment cause."""

    gate: Before
    finding: Finding | None
    cause: str
    evidence: str


def gated(
    item: pytest.Item, report: pytest.TestReport, excinfo: pytest.ExceptionInfo[BaseException]
) -> Gated | None:
    """The gate of the test's scenario that applies to this Kyverno and describes the failure,
    as the result it turns the test into; None when no gate does."""
    marker = item.get_closest_marker("scenario")
    gates: tuple[Before, ...] = tuple(marker.kwargs.get("versions", ())) if marker else ()
    if not gates or report.when != "call":
        return None
    failure = str(excinfo.value) or excinfo.exconly()
    callspec = getattr(item, "callspec", None)
    version = kyverno_version(item.config)
    gate = gate_for(gates, version, callspec.id if callspec else None, failure)
    if gate is None or version is None:
        return None
    evidence = redact.redact(failure[:EVIDENCE_CHARS])
    if gate.outcome == "finding":
        scenario = catalogue.scenario_id(item) or item.nodeid
        return Gated(gate, gate.finding(scenario, version, evidence), "", evidence)
    return Gated(gate, None, redact.redact(gate.cause(version)), evidence)

"""The run summary: one model, several renderers.

`RunSummary` is filled from pytest's test reports and the run's phase clock; renderers turn
it into `summary.json` here, while JUnit and HTML come from pytest's own junitxml and
pytest-html fed with the same (already redacted) test reports. Everything passes through
`redact` before any renderer sees it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from signcheck import redact
from signcheck.clients.admission import Admission, Denied
from signcheck.verdict.model import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    RESULTS,
    SEVERITIES,
    Finding,
    exit_code,
    verdict,
)

SCHEMA = "signcheck.summary/v2"
"""Documented in docs/summary.md (with its JSON Schema, docs/summary.schema.json)."""


@dataclass
class TestResult:
    nodeid: str
    outcome: str
    """The result class: pass, fail, finding, environment, skipped (`signcheck.verdict`)."""
    duration: float
    pytest_outcome: str = "passed"
    """What pytest said: passed, failed, skipped, error (failed in setup/teardown)."""
    scenario: str | None = None
    step: str | None = None
    message: str = ""
    admission: list[dict[str, Any]] = field(default_factory=list)
    expect: str = ""
    """The scenario's exact expected outcome (from the catalogue)."""
    proves: str = ""
    failure: str | None = None
    """`environment` when the test failed on the environment (registry, webhook, cluster):
    not a verdict on signatures."""
    compat: dict[str, Any] | None = None
    """A compatibility result (signature format x policy API), when the test records one."""
    observed: dict[str, str] = field(default_factory=dict)
    """What the test saw and recorded (`record_property`), e.g. SEED-05's container ID."""
    finding: dict[str, Any] | None = None
    """The finding, when the result is `finding` (`signcheck.verdict.model.Finding`)."""
    cause: str = ""
    """Why the run could not judge, when the result is `environment`."""


@dataclass
class RunSummary:
    run_id: str
    target: str
    started_at: str
    versions: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    """What ran the tests: the node kind, and where Kyverno ran."""
    tests: list[TestResult] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    """When each phase ran: `{phase, start, end}` in seconds since the run started
    (`signcheck.report.timeline`)."""
    teardown: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float = 0.0
    waiting_seconds: float = 0.0
    """Time this process spent inside waits (boot, policy Ready, pods, namespaces); under
    xdist only the controller's own waits (environment boot and teardown) are counted."""
    reports: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    """Run-level problems outside any test (leftovers after teardown, boot failure)."""
    findings: list[dict[str, Any]] = field(default_factory=list)
    """Every finding: the tests' and the posture checks', most severe first."""
    verdict: dict[str, Any] = field(default_factory=dict)
    """`signcheck.verdict.model.Verdict` plus `fail_on` and `exit_code`."""
    diagnosis: dict[str, Any] | None = None
    """The canary's inspection, when enforcement was found broken before the scenarios."""
    cluster: dict[str, Any] = field(default_factory=dict)
    """The cluster facts the report opens with (webhooks, failure policies, Kyverno's mode)."""

    @property
    def totals(self) -> dict[str, int]:
        counts: dict[str, int] = {r: 0 for r in RESULTS}
        for t in self.tests:
            counts[t.outcome] = counts.get(t.outcome, 0) + 1
        counts["total"] = len(self.tests)
        return counts

    @property
    def compatibility(self) -> list[dict[str, Any]]:
        return [{"scenario": t.scenario, **t.compat} for t in self.tests if t.compat]

    def conclude(self, fail_on: str, posture: list[Finding] | None = None) -> None:
        """The verdict, the findings (most severe first) and the exit code under `fail_on`."""
        found = [
            Finding.from_dict({**t.finding, "nodeid": t.nodeid}) for t in self.tests if t.finding
        ]
        found += posture or []
        found.sort(key=lambda f: (not f.affected, SEVERITIES.index(f.severity), f.id))
        env = [t.cause for t in self.tests if t.outcome == "environment" and t.cause]
        env += [p.removeprefix("environment: ") for p in self.problems if p.startswith("env")]
        # The cause most tests met first: one wall, named once.
        causes = sorted(set(env), key=lambda c: (-env.count(c), env.index(c)))
        broken = self.diagnosis or {}
        if broken.get("cause"):
            # The canary's diagnosis is the one cause of every scenario it blocked.
            causes = [str(broken["cause"])] + [c for c in causes if c != broken["cause"]]
        v = verdict(
            [t.outcome for t in self.tests],  # type: ignore[misc]
            found,
            causes=causes,
            fail_cause=str(broken.get("cause", "")) if broken.get("kind") == "fail" else "",
        )
        code = exit_code(v, found, fail_on)
        if v.state == "undetermined" and any(t.failure == "input" for t in self.tests):
            code = EXIT_BAD_INPUT  # what kept the run from judging is an input to fix
        if code == 0 and self.problems:
            code = EXIT_FAILED  # something of the run was left behind, or teardown failed
        self.findings = [f.as_dict() for f in found]
        self.verdict = {**v.as_dict(), "fail_on": fail_on, "exit_code": code}

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data = {
            "schema": SCHEMA,
            **data,
            "totals": self.totals,
            "compatibility": self.compatibility,
        }
        return dict(redact.redact_obj(data))


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_json(summary: RunSummary, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary.as_dict(), indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)
    return path


def admission_record(request: str, image: str | None, result: Admission) -> dict[str, Any]:
    """What the report keeps of one admission request: the parsed denial (with its verdict),
    or what was admitted (the images as stored, so a pinned digest shows, and the
    annotations Kyverno added)."""
    entry: dict[str, Any] = {"request": request, "image": image}
    if isinstance(result, Denied):
        entry.update(result.as_dict())
        return entry
    spec = result.obj.get("spec", {})
    template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get(
        "template", {}
    )
    pod_spec = template.get("spec", spec)
    entry.update(
        admitted=True,
        images=[
            c.get("image")
            for key in ("initContainers", "containers", "ephemeralContainers")
            for c in pod_spec.get(key) or []
        ],
        annotations=result.obj.get("metadata", {}).get("annotations") or {},
    )
    return entry


def admission_text(entries: list[dict[str, Any]]) -> str:
    """The admission responses of one test, human-readable, for the HTML report."""
    out = []
    for e in entries:
        head = f"{e.get('request', '?')}: {'ADMITTED' if e.get('admitted') else 'DENIED'}"
        out.append(head)
        for key in ("webhook", "policy", "rule", "image", "reason", "verdict", "code"):
            if e.get(key) is not None:
                out.append(f"  {key}: {e[key]}")
        if e.get("message"):
            out.append("  message: " + str(e["message"]).replace("\n", "\n    "))
    return redact.redact("\n".join(out))


def compatibility_html(tests: list[TestResult]) -> str:
    """The signature-format compatibility results as an HTML table (empty if none)."""
    import html

    records = [t.compat for t in tests if t.compat]
    if not records:
        return ""
    head = ("format", "signed by", "policy", "result", "reason", "expected", "storage")
    rows = []
    for r in sorted(records, key=lambda r: (str(r.get("policy")), str(r.get("format")))):
        cells = [
            r.get("format", ""),
            r.get("signed_by", ""),
            r.get("policy", ""),
            r.get("result", ""),
            r.get("reason", ""),
            r.get("expected", ""),
            r.get("storage", ""),
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return (
        '<h2 id="compatibility">Signature format compatibility</h2>'
        "<p>What the Kyverno under test accepts for each cosign signature and attestation "
        "format (COMPAT-01, COMPAT-02), per policy "
        "API (recorded on every run, never skipped).</p>"
        '<table class="signcheck-compat"><thead><tr>'
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )

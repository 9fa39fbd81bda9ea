"""The result model a release engineer reads.

Every test ends in one of five classes (kube-bench's PASS/FAIL/WARN and Polaris' severities
are the conventions users know):

- `pass`: the promise holds for this scenario;
- `fail`: the promise is broken (an unsigned image admitted, a signed one refused...);
- `finding`: the cluster keeps the promise only with a caveat, or a documented upstream gap
  lets an unsigned image through; it carries a severity, a reference and a remediation;
- `environment`: the run could not judge (Kyverno not answering, the registry unreachable),
  with the cause it observed;
- `skipped`: not applicable to this target or configuration, with the reason.

Posture checks add findings that no single test owns. The verdict is computed from all of
them, and `--fail-on` turns it into the exit code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Result = Literal["pass", "fail", "finding", "environment", "skipped"]
RESULTS: tuple[Result, ...] = ("pass", "fail", "finding", "environment", "skipped")

Severity = Literal["high", "medium", "low", "info"]
SEVERITIES: tuple[Severity, ...] = ("high", "medium", "low", "info")
"""`high`: an unsigned image is admitted under some condition this cluster meets; `medium`:
enforcement depends on something that can silently fail (fail-open, a cache); `low`: a
weakening that needs another mistake to matter; `info`: worth knowing, no risk by itself."""

FAIL_ON = ("fail", "high", "finding")
"""`--fail-on`: `fail` (default) fails the run on a broken promise; `high` also on high
findings; `finding` on any finding."""

EXIT_OK = 0
EXIT_FAILED = 1
"""A broken promise, or a finding at or above `--fail-on`."""
EXIT_INTERRUPTED = 2
EXIT_BAD_INPUT = 4
"""An option, profile, file or password is wrong: fix the input."""
EXIT_ENVIRONMENT = 6
"""The input was fine but the environment is unusable, or the run could not judge."""


@dataclass
class Finding:
    """A caveat on the promise, with what to do about it."""

    id: str
    """Stable: the scenario case (`ATK-02.cpol`) or the posture check (`POSTURE-FAILOPEN`)."""
    title: str
    """One line: what was seen on this cluster."""
    severity: Severity
    remediation: str
    """What to change, concretely (a setting, a field, a version)."""
    reference: str = ""
    """The upstream issue, advisory or documentation that describes it."""
    affected: bool = True
    """Whether this cluster is affected (observed), or the gap only exists in principle."""
    source: str = "scenario"
    """`scenario` (a test observed it) or `posture` (the configuration says so)."""
    nodeid: str | None = None
    evidence: str = ""
    """What was observed, redacted: objects, fields, admission answers."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def line(self) -> str:
        return f"[{self.severity.upper()}] {self.id}: {self.title}"


@dataclass
class Verdict:
    state: Literal["enforced", "not enforced", "undetermined"]
    sentence: str
    counts: dict[str, int] = field(default_factory=dict)
    findings: int = 0
    cause: str = ""
    """The environment cause, when the run could not judge."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verdict(
    results: list[Result],
    findings: list[Finding],
    *,
    causes: list[str] | None = None,
    fail_cause: str = "",
) -> Verdict:
    """The run's answer to "does this cluster admit only signed images?". `causes`: why
    scenarios could not be judged, most common first; `fail_cause`: the one cause the
    diagnosis found for a broken promise."""
    counts: dict[str, int] = {r: results.count(r) for r in RESULTS}
    affected = [f for f in findings if f.affected]
    high = sum(1 for f in affected if f.severity == "high")
    n = len(affected)
    with_findings = f", with {n} finding{'s' if n != 1 else ''}" if n else ""
    if high:
        with_findings += f" ({high} high)"
    cause = (causes or [""])[0]
    if counts["fail"]:
        broke = f"{counts['fail']} scenario{'s' if counts['fail'] != 1 else ''} broke the promise"
        if fail_cause:
            unjudged = counts["environment"]
            more = f", {unjudged} not judged" if unjudged else ""
            sentence = f"NOT enforced: {fail_cause} ({broke}{more}){with_findings}"
        else:
            sentence = f"NOT enforced: {broke}{with_findings}"
            if counts["environment"] and cause:
                sentence += f"; {counts['environment']} not judged: {cause}"
        return Verdict("not enforced", sentence, counts, n, fail_cause or cause)
    judged = counts["pass"] + counts["finding"]
    if counts["environment"] or not judged:
        why = cause or ("no scenario ran" if not judged else "the environment failed")
        sentence = (
            f"undetermined: {counts['environment']} scenario"
            f"{'s' if counts['environment'] != 1 else ''} could not be judged ({why})"
            f"{with_findings}"
        )
        return Verdict("undetermined", sentence, counts, n, cause)
    return Verdict("enforced", f"enforced{with_findings}", counts, n, "")


def exit_code(v: Verdict, findings: list[Finding], fail_on: str) -> int:
    """The process exit code for `v` under `--fail-on`."""
    if v.state == "not enforced":
        return EXIT_FAILED
    affected = [f for f in findings if f.affected]
    if fail_on == "finding" and affected:
        return EXIT_FAILED
    if fail_on == "high" and any(f.severity == "high" for f in affected):
        return EXIT_FAILED
    if v.state == "undetermined":
        return EXIT_ENVIRONMENT
    return EXIT_OK

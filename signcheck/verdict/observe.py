"""How a test reports a finding: `raise FindingObserved(Finding(...))` (or `observe(...)`).

The plugin turns it into the test's result `finding` (a passed test in JUnit, with the finding
as properties; `FINDING` on the terminal), never into a failure, skip or xfail: what the test
watched happen is recorded with its severity and remediation, and `--fail-on` decides whether
it fails the run.
"""

from __future__ import annotations

from typing import NoReturn

from signcheck.verdict.model import Finding, Severity


class FindingObserved(Exception):
    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.line())
        self.finding = finding


def observe(
    id: str,
    title: str,
    severity: Severity,
    remediation: str,
    *,
    reference: str = "",
    evidence: str = "",
) -> NoReturn:
    raise FindingObserved(
        Finding(id, title, severity, remediation, reference=reference, evidence=evidence)
    )

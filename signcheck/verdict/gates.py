"""Version-gated outcomes: what a scenario's expected outcome becomes on an older Kyverno.

A scenario's table lives with it, in its marker:

    @pytest.mark.scenario("REF-03", step=..., expect=..., versions=(
        Before("v1.19.0", "finding", matches=r"not pinned", why=..., reference=...,
               cases=("ivpol",)),
    ))

The test body never asks which version runs. It asserts the expected outcome; when that
assertion (or a signcheck error) fails on a Kyverno older than the gate's version, and the
failure says what the gate describes (`matches`, a regular expression over its text), the
result becomes the gate's class instead of `fail`: a *finding* (the older Kyverno lets
something through, or does not do what the policy asks: severity, reference, remediation,
the failure as evidence), or *environment* (that Kyverno cannot be judged here, e.g. it needs
the public Sigstore trust root offline). A failure the gate does not describe stays a failure,
and a gated test that passes on the old version is a pass: only what was observed is named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from signcheck.verdict.model import Finding, Severity


def version_tuple(version: str) -> tuple[int, int, int]:
    major, minor, patch, *_ = [
        *(int(p) for p in re.findall(r"\d+", version.split("-")[0])),
        0,
        0,
        0,
    ]
    return major, minor, patch


@dataclass(frozen=True)
class Before:
    """On a Kyverno older than `version`, a failure matching `matches` is `outcome`."""

    version: str
    """The first Kyverno release with the expected behaviour."""
    outcome: Literal["finding", "environment"]
    matches: str
    """A regular expression the failure's text must match (searched, case-sensitive)."""
    why: str
    """What that Kyverno does instead: the finding's title or the environment cause."""
    reference: str
    """The upstream issue, pull request or release note."""
    severity: Severity = "medium"
    remediation: str = ""
    """For a finding; default: upgrade Kyverno to `version` or later."""
    cases: tuple[str, ...] = ()
    """Parametrized cases it applies to: a case id, or one of its dash-separated parts
    (`ivpol` covers `deployment-ivpol`); empty, or a test without cases: every one."""

    def applies(self, kyverno: str | None, case: str | None) -> bool:
        if not kyverno or version_tuple(kyverno) >= version_tuple(self.version):
            return False
        return self.covers(case)

    def covers(self, case: str | None) -> bool:
        """Whether the gate is about this parametrized case (whatever the version)."""
        if not self.cases or case is None:
            return True  # a test without cases is wholly the one its marker describes
        return any(c == case or c in case.split("-") for c in self.cases)

    def describes(self, failure: str) -> bool:
        return re.search(self.matches, failure) is not None

    def summary(self) -> str:
        """One line for the catalogue."""
        where = f" ({', '.join(self.cases)})" if self.cases else ""
        return f"before {self.version}{where}: {self.outcome}: {self.why} ({self.reference})"

    def finding(self, scenario: str, kyverno: str, evidence: str) -> Finding:
        return Finding(
            id=scenario,
            title=f"Kyverno {kyverno}: {self.why}",
            severity=self.severity,
            remediation=self.remediation or f"upgrade Kyverno to {self.version} or later",
            reference=self.reference,
            evidence=evidence,
        )

    def cause(self, kyverno: str) -> str:
        return f"Kyverno {kyverno}: {self.why} ({self.reference})"


def gate_for(
    gates: tuple[Before, ...], kyverno: str | None, case: str | None, failure: str
) -> Before | None:
    """The first gate that applies to this version and case and describes the failure."""
    for gate in gates:
        if gate.applies(kyverno, case) and gate.describes(failure):
            return gate
    return None

"""The verdict block: the last lines of every run on the terminal."""

from __future__ import annotations

from typing import Any

from signcheck import redact
from signcheck.report.summary import RunSummary

_MARK = {"enforced": "green", "not enforced": "red", "undetermined": "yellow"}


def verdict_lines(summary: RunSummary) -> list[tuple[str, str]]:
    """(text, colour) lines: the verdict, then each finding with its remediation."""
    v = summary.verdict
    colour = _MARK.get(str(v.get("state")), "yellow")
    lines = [(f"signcheck verdict: {v.get('sentence')}", colour)]
    if summary.diagnosis:
        lines.append((f"  fix: {summary.diagnosis.get('remediation')}", ""))
    for f in summary.findings:
        if not f.get("affected", True):
            continue
        lines.append((f"  [{str(f['severity']).upper()}] {f['id']}: {f['title']}", "yellow"))
        lines.append((f"      fix: {f['remediation']}", ""))
        if f.get("reference"):
            lines.append((f"      see: {f['reference']}", ""))
    code, fail_on = v.get("exit_code"), v.get("fail_on")
    lines.append((f"exit code {code} (--fail-on {fail_on}; docs/summary.md#exit-codes)", ""))
    return [(redact.redact(text), c) for text, c in lines]


def write_verdict(tr: Any, summary: RunSummary) -> None:
    tr.write_sep("=", "signcheck verdict", bold=True)
    for text, colour in verdict_lines(summary):
        tr.write_line(text, **({colour: True, "bold": True} if colour else {}))

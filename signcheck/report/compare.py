"""Whole runs of the suite side by side: what the version matrix and the fleet report share.

Each run is read back from its own `summary.json` (the evidence; nothing is added to what
the runs said): its line (verdict, exit code, error, links, totals) and, test by test, one
cell per run, with the rows whose outcome classes differ marked. `signcheck.report.matrix`
puts Kyverno versions in the columns, `signcheck.report.fleet` clusters. Pure: no
subprocess, no cluster.
"""

from __future__ import annotations

import html
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signcheck.redact import redact, redact_obj

SUMMARY_SCHEMA = "signcheck.summary/v2"
CLASSES = ("pass", "fail", "finding", "environment", "skipped")
ABSENT = "absent"
DETAIL_MAX = 200


@dataclass
class RunResult:
    """One finished run: what it was called, where its reports are, how it ended."""

    label: str
    reports_dir: Path
    exit_code: int | None = None
    error: str | None = None
    """One line, when the run produced no summary (it could not start, it was killed)."""


def run_entry(run: RunResult, base: Path, key: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The run's line (its label under `key`) and its summary, when it wrote a usable one."""
    summary, problem = read_summary(run.reports_dir / "summary.json")
    error = run.error or problem
    entry: dict[str, Any] = {
        key: run.label,
        "kyverno_reported": None,
        "verdict": None,
        "state": None,
        "exit_code": run.exit_code,
        "error": one_line(error) if error else None,
        "report": link(run.reports_dir / "report.html", base),
        "log": link(run.reports_dir / "pytest.log", base),
        "run_id": None,
        "totals": {},
        "unexplained": [],
    }
    if summary is None:
        return entry, None
    verdict = summary.get("verdict") or {}
    entry["kyverno_reported"] = (summary.get("versions") or {}).get("kyverno")
    entry["verdict"] = verdict.get("sentence")
    entry["state"] = verdict.get("state")
    if entry["exit_code"] is None:
        # Read back from reports alone (no process to ask): the exit code the run decided.
        entry["exit_code"] = verdict.get("exit_code")
    entry["run_id"] = summary.get("run_id")
    entry["totals"] = totals(summary)
    entry["unexplained"] = unexplained(summary)
    return entry, summary


def write(doc: dict[str, Any], out_dir: Path, name: str, render: Any) -> tuple[Path, Path]:
    """`out_dir/<name>.json` and `out_dir/<name>.html` (`render(doc)`), both redacted."""
    doc = redact_obj(doc)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{name}.json"
    html_path = out_dir / f"{name}.html"
    json_path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", "utf-8")
    html_path.write_text(render(doc), "utf-8")
    return json_path, html_path


def tests_by_nodeid(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        t["nodeid"]: t
        for t in summary.get("tests") or []
        if isinstance(t, dict) and t.get("nodeid")
    }


def rows(labels: list[str], tests: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per test node id seen in any run (`tests`: label -> node id -> test, only for
    the runs that wrote a summary), a cell per label, sorted by scenario."""
    nodeids: dict[str, dict[str, Any]] = {}
    for label in labels:
        for nodeid, test in tests.get(label, {}).items():
            known = nodeids.setdefault(nodeid, {"scenario": "", "step": ""})
            # The first run that names a scenario wins: it comes from the test's own marker,
            # the same in every run of this checkout.
            if not known["scenario"]:
                known["scenario"] = test.get("scenario") or ""
                known["step"] = test.get("step") or known["step"]
    out = []
    for nodeid, known in nodeids.items():
        cells = {label: cell(tests.get(label, {}).get(nodeid)) for label in labels}
        # A run without a summary, or stopped before its first test, says nothing about any
        # test: its "absent" cells would make every row differ and hide the real differences
        # (why it judged nothing is on its run line).
        judged = {cells[label]["outcome"] for label in labels if tests.get(label)}
        out.append(
            {
                "nodeid": nodeid,
                "scenario": known["scenario"],
                "step": known["step"],
                "cells": cells,
                "differs": len(judged) > 1,
            }
        )
    out.sort(key=lambda r: _sort_key(r["scenario"], r["nodeid"]))
    return out


def unexplained(summary: dict[str, Any]) -> list[str]:
    """The results a run's column cannot stand on: a failure (the promise broken), or a
    run that could not judge a scenario without a version gate saying why that version
    cannot (`signcheck.verdict.gates`, recorded as the `version_gate` observation)."""
    out = []
    for test in summary.get("tests") or []:
        gated = "version_gate" in (test.get("observed") or {})
        if test.get("outcome") == "fail" or (test.get("outcome") == "environment" and not gated):
            out.append(str(test.get("nodeid")))
    return out


def read_summary(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"no summary.json in {path.parent}"
    except (OSError, ValueError) as err:
        return None, f"{path} is unreadable: {err}"
    if not isinstance(data, dict):
        return None, f"{path} is not a summary (not a JSON object)"
    if data.get("schema") != SUMMARY_SCHEMA:
        # Another version may rename the fields read here: better no column than a wrong one.
        return None, f"{path} has schema {data.get('schema')!r}, not {SUMMARY_SCHEMA}"
    return data, None


def totals(summary: dict[str, Any]) -> dict[str, int]:
    given = summary.get("totals")
    if isinstance(given, dict) and given:
        return {str(k): v for k, v in given.items() if isinstance(v, int)}
    counted = dict.fromkeys(CLASSES, 0)
    for test in summary.get("tests") or []:
        outcome = test.get("outcome")
        counted[outcome] = counted.get(outcome, 0) + 1
    counted["total"] = len(summary.get("tests") or [])
    return counted


def cell(test: dict[str, Any] | None) -> dict[str, str]:
    if test is None:
        return {"outcome": ABSENT}
    outcome = str(test.get("outcome") or "")
    finding = test.get("finding") if isinstance(test.get("finding"), dict) else None
    if outcome == "finding" and finding and finding.get("title"):
        detail = str(finding["title"])
    elif outcome == "environment" and test.get("cause"):
        detail = str(test["cause"])
    else:
        detail = str(test.get("message") or "")
    return {"outcome": outcome, "detail": one_line(detail)}


def one_line(text: str, limit: int = DETAIL_MAX) -> str:
    # Redacted before it is cut: a secret cut in half is no longer recognisable.
    lines = redact(text).strip().splitlines()
    first = lines[0].strip() if lines else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


def link(path: Path, base: Path) -> str | None:
    if not path.is_file():
        return None
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()


_DIGITS = re.compile(r"(\d+)")


def _sort_key(scenario: str, nodeid: str) -> tuple[int, list[Any], str]:
    # Numbers compared as numbers (ATK-9 before ATK-10); tests without a scenario last.
    parts: list[Any] = [
        (0, int(p), "") if p.isdigit() else (1, 0, p) for p in _DIGITS.split(scenario)
    ]
    return (0 if scenario else 1, parts, nodeid)


STYLE = """<style>
body{font:13px/1.4 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#222;
  margin:20px;max-width:1400px}
h1{font-size:20px;margin:0 0 12px}
h2{font-size:16px;margin:18px 0 8px}
a{color:#1a5fb4}
code{font-family:Menlo,Consolas,monospace;font-size:12px}
ul.runs{list-style:none;padding:0;margin:0 0 10px}
ul.runs li{margin:4px 0;padding:6px 10px;border-left:6px solid #888;background:#f6f6f6}
.st-enforced{border-color:#1e8e3e!important}
.st-not-enforced{border-color:#d93025!important}
.st-undetermined{border-color:#f9ab00!important}
.problem{color:#a50e0e}
.muted{color:#666}
p.differ{font-size:15px;font-weight:bold;margin:14px 0 8px}
table{border-collapse:collapse}
th,td{border:1px solid #e3e3e3;padding:4px 7px;text-align:left;vertical-align:top}
th{background:#f6f6f6;position:sticky;top:0}
td.sc{max-width:480px}
td.sc small{display:block;color:#666}
td.cell{min-width:150px}
td.cell b{display:block}
td.cell small{display:block;font-size:11px;max-width:320px;overflow-wrap:anywhere}
.o-pass{background:#e6f4ea;color:#0d652d}
.o-fail{background:#fce8e6;color:#a50e0e}
.o-finding{background:#fef3e0;color:#8a4b00}
.o-environment{background:#e3ebf5;color:#2b4c6f}
.o-skipped,.o-absent,.o-other{background:#f1f1f1;color:#666}
tr.differs td:first-child{border-left:6px solid #d93025}
tr.differs td.sc{background:#fff6d6;font-weight:bold}
tr.differs td.sc small{font-weight:normal}
.legend{margin-top:14px}
.legend span{display:inline-block;padding:2px 8px;margin-right:6px;border-radius:3px}
</style>"""

_LEGEND = (
    ("pass", "pass: the promise holds"),
    ("fail", "fail: the promise is broken"),
    ("finding", "finding: holds with a caveat, or a documented gap"),
    ("environment", "environment: the run could not judge"),
    ("skipped", "skipped: not applicable"),
    ("absent", "absent: the test is not in that run"),
)


def e(value: Any) -> str:
    """Escaped for HTML, after redaction."""
    return html.escape(redact("" if value is None else str(value)), quote=True)


def legend() -> str:
    spans = "".join(f'<span class="o-{c}">{e(text)}</span>' for c, text in _LEGEND)
    return f'<p class="legend">{spans}</p>'


def run_links(run: dict[str, Any]) -> str:
    """The run's exit code, error and links, as the end of its line."""
    parts = []
    if run.get("exit_code") is not None:
        parts.append(f'<span class="muted">(exit {e(run["exit_code"])})</span>')
    if run.get("error"):
        parts.append(f'<span class="problem">{e(run["error"])}</span>')
    links = []
    if run.get("report"):
        links.append(f'<a href="{e(run["report"])}">report</a>')
    if run.get("log"):
        links.append(f'<a href="{e(run["log"])}">pytest log</a>')
    if run.get("run_id"):
        links.append(f'<span class="muted">run <code>{e(run["run_id"])}</code></span>')
    if links:
        parts.append("&middot; " + " &middot; ".join(links))
    return " ".join(parts)


def state_class(run: dict[str, Any]) -> str:
    return "st-" + e(str(run.get("state") or "undetermined").replace(" ", "-"))


def row_html(row: dict[str, Any], labels: list[str], runs: dict[str, Any]) -> str:
    """A test's row: its scenario, then one cell per label (`runs`: label -> run line)."""
    label = row.get("scenario") or row.get("nodeid", "").rpartition("::")[2]
    cls = ' class="differs"' if row.get("differs") else ""
    cells = [
        f'<td class="sc" title="{e(row.get("nodeid"))}"><code>{e(label)}</code>'
        f"<small>{e(row.get('step'))}</small></td>"
    ]
    for column in labels:
        got = row.get("cells", {}).get(column) or {"outcome": ABSENT}
        outcome = str(got.get("outcome") or ABSENT)
        detail = shown = got.get("detail") or ""
        if outcome == ABSENT and (runs.get(column) or {}).get("error"):
            # The error is on the run's line already: once per cell would bury the table.
            detail = f"the run produced no summary: {runs[column]['error']}"
            shown = "no summary"
        css = outcome if outcome in (*CLASSES, ABSENT) else "other"
        cells.append(
            f'<td class="cell o-{css}" title="{e(detail)}">'
            f"<b>{e(outcome)}</b>" + (f"<small>{e(shown)}</small>" if shown else "") + "</td>"
        )
    return f"<tr{cls}>" + "".join(cells) + "</tr>"

"""The catalogue across Kyverno versions: one row per test, one column per version.

`build` reads the `summary.json` each version's run wrote (`signcheck matrix` runs them,
`signcheck.cli.matrix`) and says, test by test, where the outcome classes differ; `write` turns
that into `matrix.json` and one self-contained `matrix.html`. Pure: no subprocess, no cluster.
Documented in docs/matrix.md.
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

SCHEMA = "signcheck.matrix/v1"
SUMMARY_SCHEMA = "signcheck.summary/v2"
CLASSES = ("pass", "fail", "finding", "environment", "skipped")
ABSENT = "absent"
DETAIL_MAX = 200


@dataclass
class MatrixRun:
    version: str
    reports_dir: Path
    exit_code: int | None = None
    error: str | None = None
    """One line, when the run produced no summary (it could not start, it was killed)."""


def build(runs: list[MatrixRun], out_dir: Path | None = None) -> dict[str, Any]:
    """The matrix of `runs`, in their order. Report links are relative to `out_dir` (where
    `write` will put the matrix; default the current directory)."""
    base = out_dir if out_dir is not None else Path.cwd()
    run_entries: list[dict[str, Any]] = []
    tests_by_version: dict[str, dict[str, dict[str, Any]]] = {}
    for run in runs:
        entry, summary = _run_entry(run, base)
        run_entries.append(entry)
        if summary is not None:
            tests_by_version[run.version] = {
                t["nodeid"]: t
                for t in summary.get("tests") or []
                if isinstance(t, dict) and t.get("nodeid")
            }

    versions = [r.version for r in runs]
    nodeids: dict[str, dict[str, Any]] = {}
    for version in versions:
        for nodeid, test in tests_by_version.get(version, {}).items():
            known = nodeids.setdefault(nodeid, {"scenario": "", "step": ""})
            # The first run that names a scenario wins: it comes from the test's own marker,
            # the same in every run of this checkout.
            if not known["scenario"]:
                known["scenario"] = test.get("scenario") or ""
                known["step"] = test.get("step") or known["step"]

    rows = []
    for nodeid, known in nodeids.items():
        cells = {v: _cell(tests_by_version.get(v, {}).get(nodeid)) for v in versions}
        # A run without a summary says nothing about any test: its "absent" cells would
        # make every row differ and hide the real differences (its error is on its run line).
        judged = {cells[v]["outcome"] for v in versions if v in tests_by_version}
        rows.append(
            {
                "nodeid": nodeid,
                "scenario": known["scenario"],
                "step": known["step"],
                "cells": cells,
                "differs": len(judged) > 1,
            }
        )
    rows.sort(key=lambda r: _sort_key(r["scenario"], r["nodeid"]))
    matrix = {
        "schema": SCHEMA,
        "versions": versions,
        "runs": run_entries,
        "rows": rows,
        "differences": sum(1 for r in rows if r["differs"]),
        "totals": {e["version"]: e["totals"] for e in run_entries},
    }
    redacted: dict[str, Any] = redact_obj(matrix)
    return redacted


def _run_entry(run: MatrixRun, base: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    summary, problem = _read_summary(run.reports_dir / "summary.json")
    error = run.error or problem
    entry: dict[str, Any] = {
        "version": run.version,
        "kyverno_reported": None,
        "verdict": None,
        "state": None,
        "exit_code": run.exit_code,
        "error": _one_line(error) if error else None,
        "report": _link(run.reports_dir / "report.html", base),
        "log": _link(run.reports_dir / "pytest.log", base),
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
    entry["totals"] = _totals(summary)
    entry["unexplained"] = unexplained(summary)
    return entry, summary


def unexplained(summary: dict[str, Any]) -> list[str]:
    """The results a version's column cannot stand on: a failure (the promise broken), or a
    run that could not judge a scenario without a version gate saying why that version
    cannot (`signcheck.verdict.gates`, recorded as the `version_gate` observation)."""
    out = []
    for test in summary.get("tests") or []:
        gated = "version_gate" in (test.get("observed") or {})
        if test.get("outcome") == "fail" or (test.get("outcome") == "environment" and not gated):
            out.append(str(test.get("nodeid")))
    return out


def _read_summary(path: Path) -> tuple[dict[str, Any] | None, str | None]:
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


def _totals(summary: dict[str, Any]) -> dict[str, int]:
    totals = summary.get("totals")
    if isinstance(totals, dict) and totals:
        return {str(k): v for k, v in totals.items() if isinstance(v, int)}
    counted = dict.fromkeys(CLASSES, 0)
    for test in summary.get("tests") or []:
        outcome = test.get("outcome")
        counted[outcome] = counted.get(outcome, 0) + 1
    counted["total"] = len(summary.get("tests") or [])
    return counted


def _cell(test: dict[str, Any] | None) -> dict[str, str]:
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
    return {"outcome": outcome, "detail": _one_line(detail)}


def _one_line(text: str) -> str:
    # Redacted before it is cut: a secret cut in half is no longer recognisable.
    lines = redact(text).strip().splitlines()
    first = lines[0].strip() if lines else ""
    return first if len(first) <= DETAIL_MAX else first[: DETAIL_MAX - 1] + "…"


def _link(path: Path, base: Path) -> str | None:
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


def write(matrix: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """`out_dir/matrix.json` and `out_dir/matrix.html`."""
    matrix = redact_obj(matrix)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "matrix.json"
    html_path = out_dir / "matrix.html"
    json_path.write_text(json.dumps(matrix, indent=1, ensure_ascii=False) + "\n", "utf-8")
    html_path.write_text(render_html(matrix), "utf-8")
    return json_path, html_path


_STYLE = """<style>
body{font:13px/1.4 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#222;
  margin:20px;max-width:1400px}
h1{font-size:20px;margin:0 0 12px}
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


def _e(value: Any) -> str:
    return html.escape(redact("" if value is None else str(value)), quote=True)


def _css_class(outcome: str) -> str:
    return outcome if outcome in (*CLASSES, ABSENT) else "other"


def render_html(matrix: dict[str, Any]) -> str:
    versions: list[str] = list(matrix.get("versions") or [])
    runs = {r["version"]: r for r in matrix.get("runs") or []}
    rows: list[dict[str, Any]] = list(matrix.get("rows") or [])
    # Differences first: they are what the page is for; the rest keeps the catalogue order.
    rows.sort(key=lambda r: not r.get("differs"))
    n = int(matrix.get("differences") or 0)
    out = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>signcheck matrix: Kyverno {_e(', '.join(versions))}</title>",
        _STYLE,
        "</head><body>",
        f"<h1>signcheck: the catalogue across Kyverno {_e(', '.join(versions))}</h1>",
        '<ul class="runs">',
        *(_run_line(runs.get(v, {"version": v})) for v in versions),
        "</ul>",
        f'<p class="differ">{n} {"scenario differs" if n == 1 else "scenarios differ"} '
        "between versions</p>",
        "<table><thead><tr><th>scenario</th>",
        *(f"<th>Kyverno {_e(v)}</th>" for v in versions),
        "</tr></thead><tbody>",
        *(_row(r, versions, runs) for r in rows),
        "</tbody></table>",
        '<p class="legend">',
        *(f'<span class="o-{c}">{_e(text)}</span>' for c, text in _LEGEND),
        "</p></body></html>",
    ]
    return "\n".join(out) + "\n"


def _run_line(run: dict[str, Any]) -> str:
    state = str(run.get("state") or "undetermined").replace(" ", "-")
    head = f"<b>Kyverno {_e(run.get('version'))}</b>"
    reported = run.get("kyverno_reported")
    if reported and reported != run.get("version"):
        head += f' <span class="problem">(the run reported Kyverno {_e(reported)})</span>'
    parts = [f"{head}: {_e(run['verdict'])}" if run.get("verdict") else head]
    if run.get("exit_code") is not None:
        parts.append(f'<span class="muted">(exit {_e(run["exit_code"])})</span>')
    if run.get("error"):
        parts.append(f'<span class="problem">{_e(run["error"])}</span>')
    links = []
    if run.get("report"):
        links.append(f'<a href="{_e(run["report"])}">report</a>')
    if run.get("log"):
        links.append(f'<a href="{_e(run["log"])}">pytest log</a>')
    if run.get("run_id"):
        links.append(f'<span class="muted">run <code>{_e(run["run_id"])}</code></span>')
    if links:
        parts.append("&middot; " + " &middot; ".join(links))
    return f'<li class="st-{_e(state)}">' + " ".join(parts) + "</li>"


def _row(row: dict[str, Any], versions: list[str], runs: dict[str, Any]) -> str:
    label = row.get("scenario") or row.get("nodeid", "").rpartition("::")[2]
    cls = ' class="differs"' if row.get("differs") else ""
    cells = [
        f'<td class="sc" title="{_e(row.get("nodeid"))}"><code>{_e(label)}</code>'
        f"<small>{_e(row.get('step'))}</small></td>"
    ]
    for version in versions:
        cell = row.get("cells", {}).get(version) or {"outcome": ABSENT}
        outcome = str(cell.get("outcome") or ABSENT)
        detail = shown = cell.get("detail") or ""
        if outcome == ABSENT and (runs.get(version) or {}).get("error"):
            # The error is on the run's line already: once per cell would bury the table.
            detail = f"the run produced no summary: {runs[version]['error']}"
            shown = "no summary"
        cells.append(
            f'<td class="cell o-{_css_class(outcome)}" title="{_e(detail)}">'
            f"<b>{_e(outcome)}</b>" + (f"<small>{_e(shown)}</small>" if shown else "") + "</td>"
        )
    return f"<tr{cls}>" + "".join(cells) + "</tr>"

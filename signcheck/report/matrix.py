"""The catalogue across Kyverno versions: one row per test, one column per version.

`build` reads the `summary.json` each version's run wrote (`signcheck matrix` runs them,
`signcheck.cli.matrix`) and says, test by test, where the outcome classes differ; `write` turns
that into `matrix.json` and one self-contained `matrix.html`. Pure: no subprocess, no cluster.
The reading and the cells are `signcheck.report.compare`'s, shared with the fleet report.
Documented in docs/matrix.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from signcheck.redact import redact_obj
from signcheck.report import compare
from signcheck.report.compare import RunResult, e

SCHEMA = "signcheck.matrix/v1"


def build(runs: list[RunResult], out_dir: Path | None = None) -> dict[str, Any]:
    """The matrix of `runs` (labelled by Kyverno version), in their order. Report links are
    relative to `out_dir` (where `write` will put the matrix; default the current directory)."""
    base = out_dir if out_dir is not None else Path.cwd()
    run_entries: list[dict[str, Any]] = []
    tests: dict[str, dict[str, dict[str, Any]]] = {}
    for run in runs:
        entry, summary = compare.run_entry(run, base, "version")
        run_entries.append(entry)
        if summary is not None:
            tests[run.label] = compare.tests_by_nodeid(summary)
    versions = [r.label for r in runs]
    rows = compare.rows(versions, tests)
    matrix = {
        "schema": SCHEMA,
        "versions": versions,
        "runs": run_entries,
        "rows": rows,
        "differences": sum(1 for r in rows if r["differs"]),
        "totals": {entry["version"]: entry["totals"] for entry in run_entries},
    }
    redacted: dict[str, Any] = redact_obj(matrix)
    return redacted


def write(matrix: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """`out_dir/matrix.json` and `out_dir/matrix.html`."""
    return compare.write(matrix, out_dir, "matrix", render_html)


def render_html(matrix: dict[str, Any]) -> str:
    versions: list[str] = list(matrix.get("versions") or [])
    runs = {r["version"]: r for r in matrix.get("runs") or []}
    rows: list[dict[str, Any]] = list(matrix.get("rows") or [])
    # Differences first: they are what the page is for; the rest keeps the catalogue order.
    rows.sort(key=lambda r: not r.get("differs"))
    n = int(matrix.get("differences") or 0)
    out = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>signcheck matrix: Kyverno {e(', '.join(versions))}</title>",
        compare.STYLE,
        "</head><body>",
        f"<h1>signcheck: the catalogue across Kyverno {e(', '.join(versions))}</h1>",
        '<ul class="runs">',
        *(_run_line(runs.get(v, {"version": v})) for v in versions),
        "</ul>",
        f'<p class="differ">{n} {"scenario differs" if n == 1 else "scenarios differ"} '
        "between versions</p>",
        "<table><thead><tr><th>scenario</th>",
        *(f"<th>Kyverno {e(v)}</th>" for v in versions),
        "</tr></thead><tbody>",
        *(compare.row_html(r, versions, runs) for r in rows),
        "</tbody></table>",
        compare.legend(),
        "</body></html>",
    ]
    return "\n".join(out) + "\n"


def _run_line(run: dict[str, Any]) -> str:
    head = f"<b>Kyverno {e(run.get('version'))}</b>"
    reported = run.get("kyverno_reported")
    if reported and reported != run.get("version"):
        head += f' <span class="problem">(the run reported Kyverno {e(reported)})</span>'
    line = f"{head}: {e(run['verdict'])}" if run.get("verdict") else head
    tail = compare.run_links(run)
    return (
        f'<li class="{compare.state_class(run)}">' + line + (" " + tail if tail else "") + "</li>"
    )

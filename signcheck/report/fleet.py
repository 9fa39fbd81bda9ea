"""Clusters side by side: each cluster's verdict, its findings, and where clusters differ.

`build` reads the `summary.json` each cluster's run wrote (`signcheck fleet` runs them,
`signcheck.cli.fleet`); `write` turns that into `fleet.json` and one self-contained
`fleet.html`. The first thing on the page is the cluster x verdict table with, for every
cluster that is not healthy, what is wrong with it in the run's own words. Pure: no
subprocess, no cluster. Documented in docs/fleet.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from signcheck.redact import redact_obj
from signcheck.report import compare
from signcheck.report.compare import RunResult, e

SCHEMA = "signcheck.fleet/v1"
SEVERITIES = ("critical", "high", "medium", "low", "info")
NONE = '<span class="muted">none</span>'
PROBLEM_MAX = 1000
"""What is wrong with a cluster is the point of its line: kept whole up to this length."""


def build(
    runs: list[RunResult], sources: dict[str, str], out_dir: Path | None = None
) -> dict[str, Any]:
    """The fleet of `runs` (labelled by cluster), in their order; `sources` says where each
    cluster was named. Links are relative to `out_dir` (default the current directory)."""
    base = out_dir if out_dir is not None else Path.cwd()
    entries: list[dict[str, Any]] = []
    tests: dict[str, dict[str, dict[str, Any]]] = {}
    for run in runs:
        entry, summary = compare.run_entry(run, base, "cluster")
        entry["source"] = sources.get(run.label, "")
        entry.update(_cluster_facts(summary))
        entry["healthy"] = _healthy(entry)
        entry["problem"] = None if entry["healthy"] else _problem(entry, summary)
        entries.append(entry)
        if summary is not None:
            tests[run.label] = compare.tests_by_nodeid(summary)
    clusters = [r.label for r in runs]
    rows = compare.rows(clusters, tests)
    fleet = {
        "schema": SCHEMA,
        "clusters": clusters,
        "runs": entries,
        "healthy": [x["cluster"] for x in entries if x["healthy"]],
        "unhealthy": [x["cluster"] for x in entries if not x["healthy"]],
        "rows": rows,
        "differences": sum(1 for r in rows if r["differs"]),
        "finding_differences": _finding_differences(entries, {c for c, t in tests.items() if t}),
    }
    redacted: dict[str, Any] = redact_obj(fleet)
    return redacted


def _cluster_facts(summary: dict[str, Any] | None) -> dict[str, Any]:
    if summary is None:
        return {"kubernetes": None, "cause": None, "findings": []}
    versions = summary.get("versions") or {}
    findings = [
        {
            "id": f.get("id"),
            "severity": f.get("severity"),
            "title": compare.one_line(str(f.get("title") or "")),
            "remediation": str(f.get("remediation") or ""),
            "reference": f.get("reference") or "",
            "nodeid": f.get("nodeid"),
        }
        for f in summary.get("findings") or []
        if isinstance(f, dict) and f.get("affected", True)
    ]
    return {
        "kubernetes": versions.get("kubernetes"),
        "cause": (summary.get("verdict") or {}).get("cause"),
        "findings": findings,
    }


def _healthy(entry: dict[str, Any]) -> bool:
    """Enforced, and the run's own exit code says so (its --fail-on decides findings)."""
    return not entry["error"] and entry["state"] == "enforced" and entry["exit_code"] == 0


def _problem(entry: dict[str, Any], summary: dict[str, Any] | None) -> str:
    # The run's own words: its error when it wrote no summary, else the cause it named (an
    # unreachable cluster, Kyverno missing) or its verdict sentence (which scenarios failed).
    if entry["error"]:
        return str(entry["error"])
    if entry.get("cause"):
        return compare.one_line(str(entry["cause"]), PROBLEM_MAX)
    if entry["unexplained"] and summary is not None:
        failed = [
            t.get("scenario") or t.get("nodeid")
            for t in summary.get("tests") or []
            if t.get("nodeid") in entry["unexplained"]
        ]
        head = compare.one_line(str(entry["verdict"] or ""), PROBLEM_MAX)
        return f"{head} ({', '.join(str(f) for f in failed[:8])}" + (
            f" and {len(failed) - 8} more)" if len(failed) > 8 else ")"
        )
    said = entry["verdict"] or f"exit code {entry['exit_code']}"
    return compare.one_line(str(said), PROBLEM_MAX)


def _finding_differences(entries: list[dict[str, Any]], judged: set[str]) -> list[dict[str, Any]]:
    """The findings some clusters have and other judged clusters do not."""
    where: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if entry["cluster"] not in judged:
            continue
        for f in entry["findings"]:
            known = where.setdefault(
                str(f["id"]), {"id": f["id"], "severity": f["severity"], "title": f["title"]}
            )
            known.setdefault("clusters", []).append(entry["cluster"])
    return [
        {**f, "missing_on": sorted(judged - set(f["clusters"]))}
        for f in where.values()
        if set(f["clusters"]) != judged
    ]


def terminal_lines(fleet: dict[str, Any]) -> list[str]:
    """One line per cluster, then the count of differences: what the command prints."""
    lines = []
    for run in fleet["runs"]:
        if run["healthy"]:
            lines.append(f"ok  {run['cluster']}: {compare.one_line(str(run['verdict']))}")
            continue
        ended = run["state"] or "no verdict"
        lines.append(f"BAD {run['cluster']}: {ended} (exit {run['exit_code']})")
        lines.append(f"    what is wrong: {run['problem']}")
    n, m = fleet["differences"], len(fleet["finding_differences"])
    lines.append(
        f"{len(fleet['healthy'])} of {len(fleet['clusters'])} clusters healthy; "
        f"{n} {'scenario differs' if n == 1 else 'scenarios differ'} and {m} "
        f"{'finding is' if m == 1 else 'findings are'} not on every cluster"
    )
    return lines


def write(fleet: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """`out_dir/fleet.json` and `out_dir/fleet.html`."""
    return compare.write(fleet, out_dir, "fleet", render_html)


_FLEET_STYLE = """<style>
table.fleet td.wrong{color:#a50e0e;font-weight:bold;max-width:520px}
table.fleet td.ok{color:#0d652d}
tr.st-enforced td:first-child{border-left:6px solid #1e8e3e}
tr.st-not-enforced td:first-child{border-left:6px solid #d93025}
tr.st-undetermined td:first-child{border-left:6px solid #f9ab00}
.sev{display:inline-block;padding:0 6px;border-radius:3px;font-size:11px;font-weight:bold}
.sev-critical,.sev-high{background:#fce8e6;color:#a50e0e}
.sev-medium{background:#fef3e0;color:#8a4b00}
.sev-low,.sev-info{background:#e3ebf5;color:#2b4c6f}
ul.findings li{margin:3px 0}
details{margin-top:14px}
</style>"""


def render_html(fleet: dict[str, Any]) -> str:
    clusters: list[str] = list(fleet.get("clusters") or [])
    runs = {r["cluster"]: r for r in fleet.get("runs") or []}
    rows: list[dict[str, Any]] = list(fleet.get("rows") or [])
    differing = [r for r in rows if r.get("differs")]
    healthy = len(fleet.get("healthy") or [])
    n = int(fleet.get("differences") or 0)
    out = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>signcheck fleet: {healthy} of {len(clusters)} clusters healthy</title>",
        compare.STYLE,
        _FLEET_STYLE,
        "</head><body>",
        f"<h1>signcheck fleet: {healthy} of {len(clusters)} clusters admit only signed "
        "images, as far as the runs could judge</h1>",
        '<table class="fleet"><thead><tr><th>cluster</th><th>verdict</th><th>what is wrong'
        "</th><th>findings</th><th>results</th><th>versions</th><th>run</th></tr></thead>"
        "<tbody>",
        *(_cluster_row(runs.get(c, {"cluster": c})) for c in clusters),
        "</tbody></table>",
        _findings_section(clusters, runs),
        _finding_differences_html(fleet.get("finding_differences") or []),
        f'<p class="differ">{n} {"scenario differs" if n == 1 else "scenarios differ"} '
        "between the clusters that were judged</p>",
    ]
    if differing:
        out.append(_table(differing, clusters, runs))
    out += [
        f"<details><summary>every scenario ({len(rows)})</summary>",
        _table(rows, clusters, runs),
        "</details>",
        compare.legend(),
        "</body></html>",
    ]
    return "\n".join(out) + "\n"


def _cluster_row(run: dict[str, Any]) -> str:
    wrong = (
        '<td class="ok">nothing: enforced</td>'
        if run.get("healthy")
        else f'<td class="wrong">{e(run.get("problem"))}</td>'
    )
    counts = _severity_counts(run.get("findings") or [])
    totals = run.get("totals") or {}
    results = ", ".join(f"{totals[k]} {k}" for k in compare.CLASSES if totals.get(k))
    versions = " · ".join(
        f"{name} {e(run[key])}"
        for name, key in (("Kubernetes", "kubernetes"), ("Kyverno", "kyverno_reported"))
        if run.get(key)
    )
    return (
        f'<tr class="{compare.state_class(run)}">'
        f'<td><b>{e(run.get("cluster"))}</b><small class="muted"><br>{e(run.get("source"))}'
        f"</small></td>{_verdict_cell(run)}{wrong}"
        f"<td>{counts or NONE}</td><td>{e(results)}</td>"
        f"<td>{versions}</td><td>{compare.run_links(run)}</td></tr>"
    )


def _verdict_cell(run: dict[str, Any]) -> str:
    # An unhealthy cluster's sentence repeats what is wrong with it: its state says enough.
    if run.get("healthy") or not run.get("verdict"):
        return f"<td>{e(run.get('verdict') or 'no verdict')}</td>"
    return f'<td title="{e(run["verdict"])}"><b>{e(run.get("state"))}</b></td>'


def _severity_counts(findings: list[dict[str, Any]]) -> str:
    counted = {s: sum(1 for f in findings if f.get("severity") == s) for s in SEVERITIES}
    return " ".join(f'<span class="sev sev-{s}">{n} {s}</span>' for s, n in counted.items() if n)


def _findings_section(clusters: list[str], runs: dict[str, Any]) -> str:
    parts = ["<h2>Findings per cluster</h2>"]
    for cluster in clusters:
        findings = (runs.get(cluster) or {}).get("findings") or []
        if not findings:
            continue
        items = "".join(
            f'<li><span class="sev sev-{e(f["severity"])}">{e(f["severity"])}</span> '
            f"<code>{e(f['id'])}</code> {e(f['title'])}"
            + (
                f'<br><small class="muted">fix: {e(f["remediation"])}</small>'
                if f["remediation"]
                else ""
            )
            + "</li>"
            for f in findings
        )
        parts.append(f'<h3>{e(cluster)}</h3><ul class="findings">{items}</ul>')
    if len(parts) == 1:
        parts.append('<p class="muted">no cluster has a finding</p>')
    return "\n".join(parts)


def _finding_differences_html(diffs: list[dict[str, Any]]) -> str:
    if not diffs:
        return ""
    items = "".join(
        f'<li><span class="sev sev-{e(d["severity"])}">{e(d["severity"])}</span> '
        f"<code>{e(d['id'])}</code> on {e(', '.join(d['clusters']))}, not on "
        f"{e(', '.join(d['missing_on']))}: {e(d['title'])}</li>"
        for d in diffs
    )
    return f'<h2>Findings not on every cluster</h2><ul class="findings">{items}</ul>'


def _table(rows: list[dict[str, Any]], clusters: list[str], runs: dict[str, Any]) -> str:
    head = "".join(f"<th>{e(c)}</th>" for c in clusters)
    body = "".join(compare.row_html(r, clusters, runs) for r in rows)
    return f"<table><thead><tr><th>scenario</th>{head}</tr></thead><tbody>{body}</tbody></table>"

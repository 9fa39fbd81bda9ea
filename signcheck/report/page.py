"""The top of report.html: what a person opening the report reads first.

In this order: the verdict in one sentence, the cluster facts, the findings with what to do
about them, the seed's steps as a checklist, the catalogue by family, the signature-format
table, the timeline of the run's phases. pytest-html's own page (its environment, filters
and raw results table) follows below. Everything here is rendered from `RunSummary.as_dict()`
(already redacted), html-escaped, and the whole block passes `redact` once more.
"""

from __future__ import annotations

import json
import re
from html import escape
from typing import Any

from signcheck import redact
from signcheck.report import facts
from signcheck.report.catalogue import GROUPS
from signcheck.report.summary import RunSummary, compatibility_html
from signcheck.report.timeline import svg

BLOCK_ID = "signcheck-page"
END = "<!--/signcheck-page-->"

_MARKS = {
    "pass": ("✓", "pass"),
    "fail": ("✗", "fail"),
    "finding": ("!", "finding"),
    "environment": ("?", "environment"),
    "skipped": ("&ndash;", "skipped"),
}

STYLE = """<style>
/* pytest-html puts its environment table and summary first: show this block above them,
   and pytest's filters right above its results table (CSS only: the page stays static). */
body{display:flex;flex-direction:column}
.summary,.summary__data{display:contents}
#title,body>p{order:-3}
.additional-summary.prefix{order:-2}
#environment-header,#environment{order:-1}
#environment{align-self:flex-start}
.summary__spacer{display:none}
.summary__reload{flex:none}
#signcheck-page{color:#222;font-size:13px;max-width:1200px}
#signcheck-page h2{margin:22px 0 8px;border-bottom:1px solid #ddd;padding-bottom:3px}
#signcheck-page h3{font-size:14px;margin:0;display:inline}
#signcheck-page table{border-collapse:collapse;margin:4px 0}
#signcheck-page th,#signcheck-page td{border:1px solid #e3e3e3;padding:4px 7px;
  text-align:left;vertical-align:top}
#signcheck-page th{background:#f6f6f6}
#signcheck-page code,#signcheck-page pre{font-family:Menlo,Consolas,monospace;font-size:12px}
#signcheck-page pre{white-space:pre-wrap;word-break:break-all;margin:0;background:#f6f6f6;
  padding:6px}
#signcheck-page a{color:#1a5fb4}
.sc-verdict{font-size:20px;font-weight:bold;padding:12px 16px;border-radius:4px;
  border-left:8px solid}
.sc-state-enforced{background:#e6f4ea;border-color:#1e8e3e;color:#0d652d}
.sc-state-not-enforced{background:#fce8e6;border-color:#d93025;color:#a50e0e}
.sc-state-undetermined{background:#fef7e0;border-color:#f9ab00;color:#8a5a00}
.sc-sub{color:#555;margin:6px 0}
.sc-problem{color:#a50e0e}
.sc-muted{color:#888}
.sc-badge{display:inline-block;font-size:11px;font-weight:bold;padding:1px 6px;
  border-radius:3px;color:#fff;background:#888}
.sc-sev-high{background:#d93025}.sc-sev-medium{background:#e37400}
.sc-sev-low{background:#1a73e8}.sc-sev-info{background:#5f6368}
.sc-finding{border:1px solid #ddd;border-radius:4px;padding:8px 12px;margin:8px 0}
.sc-finding.sc-unaffected{opacity:.7}
.sc-finding dl{display:grid;grid-template-columns:110px 1fr;gap:4px 10px;margin:6px 0 0}
.sc-finding dt{color:#555;font-weight:bold}.sc-finding dd{margin:0}
.sc-r-pass{color:#1e8e3e}.sc-r-fail{color:#d93025}.sc-r-finding{color:#e37400}
.sc-r-environment{color:#b06000}.sc-r-skipped{color:#888}
.sc-mark{font-size:16px;font-weight:bold;text-align:center}
#signcheck-page ul.sc-evidence{margin:0;padding-left:16px}
#signcheck-page details{margin:4px 0;border:1px solid #e3e3e3;border-radius:4px;padding:4px 8px}
#signcheck-page summary{cursor:pointer}
.sc-counts{color:#555;margin-left:8px}
.sc-kv th{width:1%;white-space:nowrap}
#sc-seed-steps td:nth-child(2){width:34%}
.sc-timeline{max-width:100%;height:auto}
</style>"""


def placeholder() -> str:
    """What pytest-html writes before the run has finished (`fill` replaces it)."""
    return (
        f'<section id="{BLOCK_ID}"><p><b>The run had not finished when this page was written: '
        "its verdict and findings are in summary.json.</b></p></section>" + END
    )


def fill(page: str, block: str) -> str | None:
    """`page` with its placeholder (or an earlier block) replaced by `block`; None if the page
    has none (pytest-html wrote it without signcheck's section)."""
    start = page.find(f'<section id="{BLOCK_ID}"')
    end = page.find(END, start)
    if start < 0 or end < 0:
        return None
    return page[:start] + block + page[end + len(END) :]


def render(summary: RunSummary) -> str:
    """The whole block for `summary` (concluded: it carries the verdict summary.json has)."""
    data = summary.as_dict()
    parts = [
        STYLE,
        _verdict(data),
        _cluster(data),
        _findings(data),
        _seed(data),
        _catalogue(data),
        compatibility_html(summary.tests),
        _timeline(data),
    ]
    body = "\n".join(p for p in parts if p)
    return redact.redact(f'<section id="{BLOCK_ID}">{body}</section>' + END)


# -- sections ---------------------------------------------------------------------------


def _verdict(d: dict[str, Any]) -> str:
    v = d.get("verdict") or {}
    state = str(v.get("state") or "undetermined")
    sentence = v.get("sentence") or "no verdict: the run did not conclude"
    counts = d.get("totals") or {}
    tally = " · ".join(f"{counts.get(r, 0)} {r}" for r in _MARKS)
    out = [
        f'<div id="sc-verdict" class="sc-verdict sc-state-{state.replace(" ", "-")}">'
        f"{escape(str(sentence))}</div>",
        f'<p class="sc-sub">{escape(tally)} · exit code {escape(str(v.get("exit_code", "?")))}'
        f" (--fail-on {escape(str(v.get('fail_on', '?')))}) · run {escape(str(d['run_id']))} "
        f"on target <b>{escape(str(d['target']))}</b>, started {escape(str(d['started_at']))}"
        f", {float(d.get('wall_seconds') or 0):.1f} s</p>",
    ]
    out += [f'<p class="sc-problem">{escape(str(p))}</p>' for p in d.get("problems") or []]
    if d.get("diagnosis"):
        out.append(facts.diagnosis(d["diagnosis"]))
    return "\n".join(out)


def _cluster(d: dict[str, Any]) -> str:
    versions = dict(d.get("versions") or {})
    env = dict(d.get("environment") or {})
    api = versions.pop("kube-apiserver", None) or versions.get("kubernetes")
    versions.pop("kubernetes", None)
    kyverno = " — ".join(
        str(x) for x in (versions.pop("kyverno", None), env.pop("kyverno", None)) if x
    )
    rows: list[tuple[str, str]] = [
        ("Kubernetes API server", _value(api)),
        ("Kyverno", _value(kyverno or None)),
    ]
    cluster = d.get("cluster") or {}
    rows += facts.rows(cluster)
    rows += [
        ("cosign", _value(versions.pop("cosign", None))),
        ("Registry", _value(versions.pop("registry", None))),
        ("Nodes", _value(env.pop("nodes", None))),
    ]
    rows += [(_label(k), _value(v)) for k, v in env.items()]
    if versions:
        rows.append(
            ("Other components", escape(", ".join(f"{k} {v}" for k, v in versions.items())))
        )
    body = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return (
        f'<h2 id="sc-cluster">Cluster</h2><table id="sc-facts" class="sc-kv">{body}</table>'
        + facts.raw(cluster)
    )


def _findings(d: dict[str, Any]) -> str:
    findings = d.get("findings") or []
    if not findings:
        return '<h2 id="sc-findings">Findings</h2><p>No findings.</p>'
    affected = sum(1 for f in findings if f.get("affected", True))
    out = [f'<h2 id="sc-findings">Findings ({affected} on this cluster)</h2>']
    for f in findings:
        sev = str(f.get("severity", "info"))
        extra = "" if f.get("affected", True) else " sc-unaffected"
        note = "" if f.get("affected", True) else ' <span class="sc-muted">(not affected)</span>'
        rows = [("Remediation", _prose(str(f.get("remediation", ""))))]
        ref = str(f.get("reference") or "")
        if ref:
            link = re.match(r"https?://", ref) is not None
            rows.append(
                ("Reference", f'<a href="{escape(ref)}">{escape(ref)}</a>' if link else escape(ref))
            )
        if f.get("evidence"):
            rows.append(("Evidence", f"<pre>{escape(str(f['evidence']))}</pre>"))
        seen = ", ".join(str(x) for x in (f.get("nodeid"), f.get("source")) if x)
        rows.append(("Seen by", escape(seen)))
        out.append(
            f'<div class="sc-finding{extra}" id="finding-{escape(str(f.get("id")))}">'
            f'<span class="sc-badge sc-sev-{escape(sev)}">{escape(sev.upper())}</span> '
            f"<b>{escape(str(f.get('id')))}</b>{note}: {escape(str(f.get('title', '')))}<dl>"
            + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
            + "</dl></div>"
        )
    return "\n".join(out)


def _seed(d: dict[str, Any]) -> str:
    steps = sorted(
        (t for t in d.get("tests") or [] if str(t.get("scenario") or "").startswith("SEED-")),
        key=lambda t: str(t["scenario"]),
    )
    if not steps:
        return ""
    rows = []
    for t in steps:
        mark, cls = _MARKS.get(str(t.get("outcome")), ("?", "environment"))
        rows.append(
            f'<tr><td class="sc-mark sc-r-{cls}">{mark}</td>'
            f"<td><b>{escape(str(t['scenario']))}</b> {escape(str(t.get('step') or ''))}"
            f'<br><span class="sc-muted">expected: {escape(str(t.get("expect") or ""))}</span></td>'
            f'<td class="sc-r-{cls}">{escape(str(t.get("outcome")))}</td>'
            f"<td>{_evidence(t)}</td></tr>"
        )
    return (
        '<h2 id="sc-seed">The seed, step by step</h2>'
        '<table id="sc-seed-steps"><thead><tr><th></th><th>Step</th><th>Outcome</th>'
        "<th>Evidence</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _evidence(t: dict[str, Any]) -> str:
    """One line per admission answer, per recorded observation, and the message or cause."""
    lines = []
    for a in t.get("admission") or []:
        request = escape(str(a.get("request", "?")))
        if a.get("admitted"):
            images = ", ".join(str(i) for i in a.get("images") or [])
            verified = "kyverno.io/verify-images" in (a.get("annotations") or {})
            note = " · verification recorded" if verified else ""
            lines.append(f"{request}: <b>ADMITTED</b> as <code>{escape(images)}</code>{note}")
        else:
            who = "/".join(str(a[k]) for k in ("webhook", "policy", "rule") if a.get(k))
            why = a.get("reason") or a.get("message") or ""
            lines.append(
                f"{request}: <b>DENIED</b> by <code>{escape(who)}</code>: {escape(str(why))}"
            )
    lines += [
        f"{escape(str(k))}: <code>{escape(str(v))}</code>"
        for k, v in (t.get("observed") or {}).items()
    ]
    message = t.get("cause") or t.get("message")
    if message:
        lines.append(f"<pre>{escape(str(message))}</pre>")
    if not lines:
        return '<span class="sc-muted">—</span>'
    return '<ul class="sc-evidence">' + "".join(f"<li>{x}</li>" for x in lines) + "</ul>"


def _catalogue(d: dict[str, Any]) -> str:
    """The scenarios beyond the seed, one family (ID prefix) per block; a family with any
    result other than a pass opens by itself."""
    tests = [
        t for t in d.get("tests") or [] if not str(t.get("scenario") or "").startswith("SEED-")
    ]
    if not tests:
        return ""
    families: dict[str, list[dict[str, Any]]] = {}
    for t in tests:
        sid = str(t.get("scenario") or "")
        families.setdefault(sid.split("-", 1)[0] if sid else "", []).append(t)
    order = [g for g in GROUPS if g in families] + sorted(set(families) - set(GROUPS))
    out = ['<h2 id="sc-catalogue">Scenario catalogue, by family</h2>']
    for fam in order:
        mine = sorted(families[fam], key=lambda t: str(t.get("scenario") or t["nodeid"]))
        outcomes = [str(t.get("outcome")) for t in mine]
        tally = ", ".join(f"{outcomes.count(r)} {r}" for r in _MARKS if outcomes.count(r))
        title = f"{fam} — {GROUPS[fam]}" if fam in GROUPS else fam or "Other tests"
        opened = " open" if any(o != "pass" for o in outcomes) else ""
        rows = "".join(_catalogue_row(t) for t in mine)
        out.append(
            f'<details class="sc-family" id="family-{escape(fam or "other")}"{opened}><summary>'
            f"<h3>{escape(title)}</h3>"
            f'<span class="sc-counts">{len(mine)} scenarios: {escape(tally)}</span></summary>'
            "<table><thead><tr><th>ID</th><th>Scenario</th><th>What it proves</th>"
            f"<th>Expected outcome</th><th>Outcome</th></tr></thead><tbody>{rows}</tbody>"
            "</table></details>"
        )
    return "\n".join(out)


def _catalogue_row(t: dict[str, Any]) -> str:
    outcome = str(t.get("outcome"))
    cls = _MARKS.get(outcome, ("?", "environment"))[1]
    why = "" if outcome == "pass" else str(t.get("cause") or t.get("message") or "")
    cells = [
        escape(str(t.get("scenario") or t["nodeid"])),
        escape(str(t.get("step") or "")),
        escape(str(t.get("proves") or "")),
        escape(str(t.get("expect") or "")),
    ]
    result = f'<b class="sc-r-{cls}">{escape(outcome)}</b>'
    if why:
        result += f'<br><span class="sc-muted">{escape(why)}</span>'
    return "<tr>" + "".join(f"<td>{c}</td>" for c in [*cells, result]) + "</tr>"


def _timeline(d: dict[str, Any]) -> str:
    chart = svg(d.get("timeline") or [], float(d.get("wall_seconds") or 0))
    if not chart:
        return ""
    waited = float(d.get("waiting_seconds") or 0)
    return (
        '<h2 id="sc-timeline">Where the time went</h2>'
        f'<p class="sc-sub">{float(d.get("wall_seconds") or 0):.1f} s in all, {waited:.1f} s '
        "of it waiting (boot, policy Ready, pods, namespaces). A bar is when a phase was busy "
        "(its parallel work merged); summary.json's <code>phases</code> adds up each thread's "
        "time.</p>" + chart
    )


# -- generic values (cluster facts, diagnosis) ---------------------------------------------


def _label(key: str) -> str:
    text = str(key).replace("_", " ")
    return text[:1].upper() + text[1:]


def _value(v: Any, depth: int = 0, key: str = "") -> str:
    """Any JSON value, readable: mappings as key/value tables, lists of mappings as tables,
    anything nested deeper as compact JSON. A fail-open failure policy is flagged."""
    if v is None or v == "" or v == [] or v == {}:
        return '<span class="sc-muted">—</span>'
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, str | int | float):
        text = escape(str(v))
        if key.lower().replace("_", "") == "failurepolicy" and str(v) == "Ignore":
            text += ' <span class="sc-badge sc-sev-medium">fail-open</span>'
        return text
    if depth >= 2 or not isinstance(v, dict | list):
        return f"<code>{escape(json.dumps(v, default=str))}</code>"
    if isinstance(v, dict):
        rows = "".join(
            f"<tr><th>{escape(_label(k))}</th><td>{_value(x, depth + 1, str(k))}</td></tr>"
            for k, x in v.items()
        )
        return f'<table class="sc-kv">{rows}</table>'
    if all(isinstance(x, dict) for x in v):
        cols: list[str] = []
        for x in v:
            cols += [str(k) for k in x if str(k) not in cols]
        head = "".join(f"<th>{escape(c)}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td>{_value(x.get(c), depth + 1, c)}</td>" for c in cols) + "</tr>"
            for x in v
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return "<ul>" + "".join(f"<li>{_value(x, depth + 1, key)}</li>" for x in v) + "</ul>"


def _prose(text: str) -> str:
    """Escaped text with `code` spans (remediations name settings and fields that way)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))

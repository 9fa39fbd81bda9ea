"""The report's Cluster table from the posture facts (`summary.cluster`): what a person needs
to judge enforcement at a glance (how Kyverno runs, its webhooks on pods with their failure
policies and scopes, who else acts on pods), with everything inspected one click away."""

from __future__ import annotations

import json
from html import escape
from typing import Any

RUN_LABEL = "signcheck.io/run"
MUTED = '<span class="sc-muted">{}</span>'


def selector_text(selector: dict[str, Any] | None) -> str:
    """`a=b, k NotIn (x, y)`; `all` for an empty selector."""
    if not selector:
        return "all"
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for e in selector.get("matchExpressions") or []:
        values = ", ".join(str(v) for v in e.get("values") or [])
        parts.append(f"{e.get('key')} {e.get('operator')}" + (f" ({values})" if values else ""))
    return ", ".join(parts)


def _policy(value: Any) -> str:
    text = escape(str(value or "—"))
    if value == "Ignore":
        text += ' <span class="sc-badge sc-sev-medium">fail-open</span>'
    return text


def _webhooks_on_pods(configs: dict[str, Any]) -> str:
    rows, own = [], []
    for cfg_name, cfg in configs.items():
        for hook in cfg.get("webhooks") or []:
            if not hook.get("acts_on_pods"):
                continue
            if RUN_LABEL in ((hook.get("namespaceSelector") or {}).get("matchLabels") or {}):
                # A fine-grained webhook of one of the run's own policies (scoped to the
                # run's namespaces): one line for all of them.
                own.append(hook)
                continue
            scope = selector_text(hook.get("namespaceSelector"))
            if hook.get("objectSelector"):
                scope += f"; objects: {selector_text(hook['objectSelector'])}"
            rows.append(
                f"<tr><td><code>{escape(str(hook.get('name')))}</code><br>"
                f'<span class="sc-muted">{escape(cfg_name)}</span></td>'
                f"<td>{_policy(hook.get('failurePolicy'))}</td>"
                f"<td>{escape(str(hook.get('timeoutSeconds', '—')))} s</td>"
                f"<td>{escape(scope)}</td></tr>"
            )
    if own:
        policies = sorted({str(h.get("failurePolicy")) for h in own})
        rows.append(
            f"<tr><td>{len(own)} fine-grained webhooks of this run's own policies</td>"
            f"<td>{', '.join(_policy(x) for x in policies)}</td>"
            f"<td>{escape(', '.join(sorted({str(h.get('timeoutSeconds')) for h in own})))} s</td>"
            f"<td>the run's namespaces ({escape(RUN_LABEL)})</td></tr>"
        )
    if not rows:
        return MUTED.format("none registered for pods")
    return (
        "<table><thead><tr><th>webhook</th><th>failure policy</th><th>timeout</th>"
        "<th>namespaces</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _others(others: dict[str, Any]) -> str:
    names = []
    for key, label in (
        ("webhook_configurations", "webhook configuration"),
        ("validating_admission_policies", "ValidatingAdmissionPolicy"),
        ("mutating_admission_policies", "MutatingAdmissionPolicy"),
    ):
        for item in others.get(key) or []:
            names.append(f"{label} {item.get('name', '?')}")
    return escape(", ".join(names)) if names else MUTED.format("none")


def _flags(kyverno: dict[str, Any]) -> str:
    if not kyverno.get("flags_readable"):
        return MUTED.format("not readable from the cluster (Kyverno runs outside it)")
    flags = kyverno.get("flags") or {}
    shown = []
    for name, value in flags.items():
        v = value.get("value") if isinstance(value, dict) else value
        shown.append(f"--{name.lstrip('-')}={v}")
    return escape(", ".join(shown)) if shown else MUTED.format("defaults")


def rows(cluster: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, html) rows for the Cluster table; empty when nothing was inspected."""
    if not cluster:
        return [("Kyverno's webhooks", MUTED.format("not inspected"))]
    if "error" in cluster:
        return [("Kyverno's webhooks", escape(str(cluster["error"])))]
    kyverno = cluster.get("kyverno") or {}
    out = [
        ("Kyverno runs", escape(str(kyverno.get("runs") or "—"))),
        ("Kyverno flags", _flags(kyverno)),
        (
            "Kyverno's webhooks on pods",
            _webhooks_on_pods(cluster.get("kyverno_webhook_configurations") or {}),
        ),
        ("Other admission on pods", _others(cluster.get("other_admission_on_pods") or {})),
    ]
    unreadable = cluster.get("unreadable") or {}
    if unreadable:
        out.append(
            ("Could not read", escape(", ".join(f"{k} ({v})" for k, v in unreadable.items())))
        )
    return out


def raw(cluster: dict[str, Any]) -> str:
    """Everything the posture checks read, collapsed."""
    if not cluster:
        return ""
    text = escape(json.dumps(cluster, indent=2, default=str))
    return (
        '<details class="sc-raw-facts"><summary>Everything inspected (posture facts, as in '
        f"summary.json <code>cluster</code>)</summary><pre>{text}</pre></details>"
    )


def diagnosis(d: dict[str, Any]) -> str:
    """The canary's diagnosis: the cause, the fix and what was checked up front; what the
    canary's pods got and everything inspected, collapsed."""
    kind = (
        "the cluster lets an unsigned image in"
        if d.get("kind") == "fail"
        else ("the run could not judge")
    )
    checked = "".join(f"<li>{escape(str(c))}</li>" for c in d.get("checked") or [])
    answers = []
    for a in d.get("admissions") or []:
        verdict = "ADMITTED" if a.get("admitted") else "DENIED"
        by = " / ".join(str(a[k]) for k in ("webhook", "policy", "rule") if a.get(k))
        answers.append(
            f"<li><b>{verdict}</b> {escape(str(a.get('request', '')))}"
            + (f" by <code>{escape(by)}</code>" if by else "")
            + (f": {escape(str(a.get('reason')))}" if a.get("reason") else "")
            + "</li>"
        )
    inspected = escape(json.dumps(d.get("inspection") or {}, indent=2, default=str))
    return (
        '<h2 id="sc-diagnosis">Diagnosis: enforcement broken before any scenario</h2>'
        '<table class="sc-kv">'
        f"<tr><th>Cause</th><td><b>{escape(str(d.get('cause', '')))}</b></td></tr>"
        f"<tr><th>Fix</th><td>{escape(str(d.get('remediation', '')))}</td></tr>"
        f"<tr><th>Meaning</th><td>{escape(kind)} (canary namespace "
        f"{escape(str(d.get('namespace', '?')))})</td></tr>"
        f"<tr><th>The canary's pods</th><td><ul>{''.join(answers) or '—'}</ul></td></tr>"
        f"<tr><th>Checked</th><td><ul>{checked}</ul></td></tr></table>"
        "<details><summary>Everything the diagnosis inspected</summary>"
        f"<pre>{inspected}</pre></details>"
    )

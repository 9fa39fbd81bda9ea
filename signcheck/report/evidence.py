"""The evidence a failing test's report entry carries, so a red run says what happened
without anybody re-running it: the admission responses the test received, the events of its
namespace, the policy's status, the Kyverno log lines around the test's requests, and
Kyverno's webhook configurations (a fail-closed webhook pointing at nothing explains a lot).

Every part is collected on its own: one that cannot be read says why and the rest still
appear. Everything passes through `redact` on the way out.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from signcheck import redact
from signcheck.clients.k8s import Cluster
from signcheck.report.summary import admission_text
from signcheck.target import Target

LOG_LINES = 60
LINE_CHARS = 1500
KYVERNO_WEBHOOKS = "webhook.kyverno.io/managed-by=kyverno"


def collect(
    target: Target,
    cluster: Cluster,
    *,
    namespace: str | None,
    policy_name: str | None,
    admissions: list[dict[str, Any]],
    since: float,
) -> str:
    """The evidence text for one failed test; `since` is when the test started (epoch s)."""
    parts: list[tuple[str, Callable[[], str]]] = [
        ("admission responses", lambda: admission_text(admissions) or "(no admission request)"),
    ]
    if namespace:
        parts.append((f"events in namespace {namespace}", lambda: _events(cluster, namespace)))
    if policy_name:
        parts.append((f"policy {policy_name} status", lambda: _policy_status(cluster, policy_name)))
    parts.append(("Kyverno log", lambda: kyverno_log(target, cluster, namespace, since)))
    parts.append(("Kyverno webhook configurations", lambda: _webhooks(cluster)))
    out = []
    for title, make in parts:
        try:
            body = make()
        except Exception as err:
            body = f"(could not be collected: {type(err).__name__}: {err})"
        out.append(f"{title}:\n{body}")
    return redact.redact("\n\n".join(out))


def _events(cluster: Cluster, namespace: str) -> str:
    return "\n".join(cluster.events(namespace)) or "(none)"


def _policy_status(cluster: Cluster, name: str) -> str:
    from signcheck.kyverno.cpol import Policies

    policy = Policies(cluster).get(name)
    if policy is None:
        return "(policy not found)"
    # The autogen block repeats the rules for every workload kind: noise here.
    status = {k: v for k, v in (policy.get("status") or {}).items() if k != "autogen"}
    return json.dumps(status, indent=2, default=str)


def _timestamp(line: str) -> float | None:
    """Kyverno's log lines start with an RFC 3339 time (UTC)."""
    head = line.split(" ", 1)[0]
    try:
        return dt.datetime.fromisoformat(head).timestamp()
    except ValueError:
        return None


def select_lines(lines: list[str], namespace: str | None, since: float) -> tuple[str, list[str]]:
    """The lines about the test's namespace; else those logged while the test ran; else the
    end of the log. Returns (which, lines)."""
    if namespace:
        mine = [ln for ln in lines if namespace in ln]
        if mine:
            return f"lines mentioning {namespace}", mine[-LOG_LINES:]
    window = [ln for ln in lines if (t := _timestamp(ln)) is not None and t >= since - 1]
    if window:
        return "lines logged while the test ran", window[-LOG_LINES:]
    return f"last {min(len(lines), LOG_LINES)} lines", lines[-LOG_LINES:]


def _clip(lines: list[str]) -> str:
    return "\n".join(ln if len(ln) <= LINE_CHARS else ln[:LINE_CHARS] + " ..." for ln in lines)


def kyverno_log(target: Target, cluster: Cluster, namespace: str | None, since: float) -> str:
    log = target.kyverno_log
    if log is not None:
        return _file_log(log, namespace, since)
    return _pod_logs(cluster, target.kyverno_namespace, namespace, since)


def _file_log(log: Path, namespace: str | None, since: float) -> str:
    if not log.is_file():
        return f"({log} does not exist)"
    with log.open("rb") as fh:
        # The end is enough: the test ran in the last moments of the log.
        fh.seek(0, 2)
        fh.seek(max(0, fh.tell() - 4 * 1024 * 1024))
        lines = fh.read().decode(errors="replace").splitlines()
    which, shown = select_lines(lines, namespace, since)
    return f"({which}, from {log})\n{_clip(shown)}"


def _pod_logs(cluster: Cluster, kyverno_ns: str, namespace: str | None, since: float) -> str:
    """Kyverno in a cluster: the admission controller pods' logs since the test began."""
    pods = cluster.pods(kyverno_ns)

    def is_admission_controller(pod: dict[str, Any]) -> bool:
        meta = pod.get("metadata") or {}
        component = (meta.get("labels") or {}).get("app.kubernetes.io/component")
        return component == "admission-controller" or "admission-controller" in str(
            meta.get("name")
        )

    admission = [p for p in pods if is_admission_controller(p)]
    if not admission:
        names = ", ".join(str((p.get("metadata") or {}).get("name")) for p in pods) or "none"
        return f"(no Kyverno admission controller pod in namespace {kyverno_ns}; pods: {names})"
    seconds = max(1, int(time.time() - since) + 5)
    out = []
    for pod in admission:
        name = str(pod["metadata"]["name"])
        text = cluster.pod_log(kyverno_ns, name, since_seconds=seconds, tail_lines=5000)
        which, shown = select_lines(text.splitlines(), namespace, since)
        out.append(f"(pod {kyverno_ns}/{name}: {which})\n{_clip(shown)}")
    return "\n".join(out)


def _webhooks(cluster: Cluster) -> str:
    lines = []
    for cfg in cluster.webhook_configurations(KYVERNO_WEBHOOKS):
        hooks = cfg.get("webhooks") or []
        lines.append(f"{cfg['kind']} {cfg['metadata'].get('name', '?')}: {len(hooks)} webhook(s)")
        for h in hooks:
            cc = h.get("clientConfig") or {}
            svc = cc.get("service")
            where = cc.get("url") or (
                f"service {svc.get('namespace')}/{svc.get('name')}" if svc else "?"
            )
            lines.append(
                f"  {h.get('name')}: failurePolicy={h.get('failurePolicy')}, "
                f"rules={len(h.get('rules') or [])}, {where}"
            )
    return "\n".join(lines) or "(none)"

"""Kubernetes label selectors and Kyverno's wildcard patterns, evaluated the way the API server
and Kyverno do, so the run can say which namespaces and requests a webhook never sees."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


def matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A `metav1.LabelSelector` against labels; an absent or empty selector matches all."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or selector.get("match_labels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or selector.get("match_expressions") or []:
        key, op = expr.get("key"), expr.get("operator")
        values = expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def wildcard(pattern: str, text: str) -> bool:
    """Kyverno's `wildcard.Match`: `*` any run (also empty), `?` one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, flags=re.DOTALL) is not None


_VERSION = re.compile(r"^(\*|v\d+((alpha|beta)\d+)?)$")


def _kind_selector(text: str) -> tuple[str, str, str, str]:
    """Kyverno's `ParseKindSelector`: (group, version, kind, subresource)."""
    parts = text.split("/")
    parts = parts[:-1] + parts[-1].split(".")
    if len(parts) == 1:
        return "*", "*", parts[0], ""
    if len(parts) == 2:
        if parts == ["*", "*"]:
            return "*", "*", "*", "*"
        if parts[0] == "*" and parts[1].lower() == parts[1]:
            return "*", "*", "*", parts[1]
        if _VERSION.match(parts[0]):
            return "*", parts[0], parts[1], ""
        return "*", "*", parts[0], parts[1]
    if len(parts) == 3:
        if _VERSION.match(parts[0]):
            return "*", parts[0], parts[1], parts[2]
        return parts[0], parts[1], parts[2], ""
    if len(parts) == 4:
        return parts[0], parts[1], parts[2], parts[3]
    return "", "", "", ""


def resource_filters(text: str) -> list[str]:
    """Kyverno's `resourceFilters` value (`[Kind,Namespace,Name][...]`), entry by entry."""
    return [f"[{e}]" for e in re.findall(r"\[([^\[\]]*)\]", text or "")]


def filter_hits_pod(entry: str, namespace: str, name: str) -> bool:
    """Whether one resourceFilters entry makes Kyverno skip creating pod `namespace/name`
    (Kyverno's `ToFilter`: missing fields are empty, and empty matches only empty)."""
    fields = entry.strip("[]").split(",")
    if not fields or not fields[0]:
        return False
    kind, ns, obj = [*fields, "", ""][:3]
    g, v, k, sub = _kind_selector(kind)
    return (
        wildcard(g, "")
        and wildcard(v, "v1")
        and wildcard(k, "Pod")
        and wildcard(sub, "")
        and wildcard(ns, namespace)
        and wildcard(obj, name)
    )


def exclusions(text: str) -> tuple[list[str], list[str]]:
    """Kyverno's `excludeGroups`/`excludeUsernames` value: (excluded, re-included with `!`)."""
    excluded, included = [], []
    for item in (text or "").split(","):
        item = item.strip()
        if item.startswith("!"):
            if item[1:].strip():
                included.append(item[1:].strip())
        elif item:
            excluded.append(item)
    return excluded, included


def requester_excluded(data: Mapping[str, str], user: str, groups: list[str]) -> list[str]:
    """What in Kyverno's ConfigMap `data` excludes a request by `user` in `groups` (Kyverno's
    `IsExcluded`: any re-inclusion wins over every exclusion), as `key: value` matches."""
    ex_users, in_users = exclusions(data.get("excludeUsernames", ""))
    ex_groups, in_groups = exclusions(data.get("excludeGroups", ""))
    if any(wildcard(p, user) for p in in_users) or any(
        wildcard(p, g) for p in in_groups for g in groups
    ):
        return []
    hits = [f"excludeUsernames: {p} (matches user {user})" for p in ex_users if wildcard(p, user)]
    hits += [
        f"excludeGroups: {p} (matches group {g})"
        for p in ex_groups
        for g in groups
        if wildcard(p, g)
    ]
    return hits

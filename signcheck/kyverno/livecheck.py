"""What the cluster holds for a policy that should have denied an image but admitted it.

A failure message must not guess ("an Audit policy, a missing policy, an image outside
`imageReferences`"): the run can look. This reads the live ClusterPolicy or
ImageValidatingPolicy and says what it found: whether it exists, its action
(`validationFailureAction` and any per-rule `failureAction` of a ClusterPolicy,
`validationActions` of an ImageValidatingPolicy), whether Kyverno reports it Ready, and whether
the image matches its `imageReferences` / `matchImageReferences` (and not its
`skipImageReferences`). Whatever could not be read or evaluated is said to be unchecked.
"""

from __future__ import annotations

import re
from typing import Any

from signcheck.clients.k8s import Cluster
from signcheck.errors import SigncheckError
from signcheck.kyverno import cpol


def wildcard(pattern: str, text: str) -> bool:
    """Kyverno's `wildcard.Match`: `*` any run of characters (also none), `?` one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, flags=re.DOTALL) is not None


def _kind(kind: str) -> cpol.Kind:
    for k in cpol.KINDS:
        if k.kind == kind:
            return k
    raise ValueError(f"not a policy kind signcheck knows: {kind!r}")


def _action(policy: dict[str, Any], kind: cpol.Kind) -> str:
    spec = policy.get("spec") or {}
    if kind is cpol.IMAGE_VALIDATING_POLICY:
        actions = spec.get("validationActions")
        note = " (only Deny refuses)" if actions and "Deny" not in actions else ""
        return f"validationActions={actions}{note}"
    action = spec.get("validationFailureAction")
    text = f"validationFailureAction={action}"
    if str(action).lower() == "audit":
        text += " (Audit only reports)"
    per_rule = [
        f"{rule.get('name')}: failureAction={verify['failureAction']}"
        for rule in spec.get("rules") or []
        for verify in rule.get("verifyImages") or []
        if verify.get("failureAction")
    ]
    if per_rule:
        text += f", per rule {', '.join(per_rule)}"
    return text


def _ready(policy: dict[str, Any], kind: cpol.Kind) -> str:
    if kind is cpol.IMAGE_VALIDATING_POLICY:
        status = (policy.get("status") or {}).get("conditionStatus") or {}
        if "ready" not in status:
            return "Kyverno reports no readiness for it"
        return "Ready" if status.get("ready") else f"NOT Ready ({status.get('message', '')})"
    cond = cpol.ready_condition(policy)
    if cond is None:
        return "Kyverno reports no Ready condition for it"
    if cpol.is_ready(policy):
        return "Ready"
    return f"NOT Ready ({cond.get('reason', '')}: {cond.get('message', '')})"


def _images(policy: dict[str, Any], kind: cpol.Kind) -> tuple[list[str], list[str], list[str]]:
    """(patterns, skipped patterns, expressions the suite does not evaluate)."""
    spec = policy.get("spec") or {}
    if kind is cpol.IMAGE_VALIDATING_POLICY:
        refs = spec.get("matchImageReferences") or []
        globs = [str(r["glob"]) for r in refs if r.get("glob")]
        return globs, [], [str(r["expression"]) for r in refs if r.get("expression")]
    patterns: list[str] = []
    skipped: list[str] = []
    for rule in spec.get("rules") or []:
        for verify in rule.get("verifyImages") or []:
            patterns += verify.get("imageReferences") or []
            if verify.get("image"):
                patterns.append(verify["image"])
            skipped += verify.get("skipImageReferences") or []
    return patterns, skipped, []


def _image_match(policy: dict[str, Any], kind: cpol.Kind, image: str) -> str:
    patterns, skipped, expressions = _images(policy, kind)
    field = "matchImageReferences" if kind is cpol.IMAGE_VALIDATING_POLICY else "imageReferences"
    matched = [p for p in patterns if wildcard(p, image)]
    if matched:
        text = f"the image {image} matches its {field} ({', '.join(matched)})"
    elif expressions:
        return (
            f"the image {image} matches none of its {field} globs {patterns}; its "
            f"expressions ({'; '.join(expressions)}) were not evaluated"
        )
    else:
        return f"the image {image} matches none of its {field} {patterns}: it was never checked"
    if hits := [p for p in skipped if wildcard(p, image)]:
        text += f", but also its skipImageReferences ({', '.join(hits)}): it is skipped"
    return text


def facts(policy: dict[str, Any] | None, kind: str, name: str, image: str) -> str:
    """One sentence of what the live object says (`policy` None: it does not exist)."""
    k = _kind(kind)
    if policy is None:
        return f"{kind} {name} does not exist in the cluster"
    return (
        f"{kind} {name} exists: {_action(policy, k)}, {_ready(policy, k)}; "
        f"{_image_match(policy, k, image)}"
    )


def explain(cluster: Cluster | None, kind: str, name: str, image: str) -> str:
    """`facts` about the live policy, or why it could not be checked."""
    if cluster is None:
        return f"the live {kind} {name} was not checked (no cluster at hand)"
    try:
        live = cpol.Policies(cluster, _kind(kind)).get(name)
    except SigncheckError as err:
        return f"the live {kind} {name} could not be read: {err.message}"
    return "Checked on the cluster: " + facts(live, kind, name, image)

"""The report's Cluster rows from posture facts: fail-open flagged, the run's own
fine-grained webhooks folded into one line, nothing invented when nothing was inspected."""

from __future__ import annotations

import re

from signcheck.report import facts


def _hook(name: str, policy: str, selector: dict | None = None) -> dict:
    return {
        "name": name,
        "failurePolicy": policy,
        "timeoutSeconds": 10,
        "namespaceSelector": selector or {},
        "acts_on_pods": True,
    }


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def test_fail_open_and_the_runs_own_webhooks() -> None:
    run = {"matchLabels": {"signcheck.io/run": "r1"}}
    cluster = {
        "kyverno": {"runs": "in the cluster", "flags_readable": True, "flags": {}},
        "kyverno_webhook_configurations": {
            "cfg": {
                "webhooks": [
                    _hook("mutate.kyverno.svc-ignore", "Ignore"),
                    _hook("ivpol.a", "Fail", run),
                    _hook("ivpol.b", "Fail", run),
                ]
            }
        },
        "other_admission_on_pods": {"validating_admission_policies": [{"name": "freeze"}]},
    }
    rows = dict(facts.rows(cluster))
    hooks = rows["Kyverno's webhooks on pods"]
    assert "fail-open" in hooks and "mutate.kyverno.svc-ignore" in hooks
    assert "2 fine-grained webhooks of this run's own policies" in _text(hooks)
    assert "ivpol.a" not in hooks
    assert _text(rows["Other admission on pods"]) == "ValidatingAdmissionPolicy freeze"
    assert _text(rows["Kyverno flags"]) == "defaults"


def test_nothing_inspected_says_so() -> None:
    assert facts.rows({}) == [("Kyverno's webhooks", facts.MUTED.format("not inspected"))]
    assert facts.raw({}) == ""
    assert "not readable" in dict(facts.rows({"kyverno": {}}))["Kyverno flags"]


def test_diagnosis_leads_with_cause_and_fix() -> None:
    block = facts.diagnosis(
        {
            "cause": "Kyverno ignores pods in namespace x: resourceFilters entry [Pod,x,*]",
            "remediation": "remove [Pod,x,*]",
            "kind": "fail",
            "namespace": "x",
            "checked": ["the live ClusterPolicy p"],
            "admissions": [{"request": "dry-run Pod x/u", "admitted": True}],
            "inspection": {"policy": {"name": "p"}},
        }
    )
    text = _text(block)
    assert text.index("Cause") < text.index("Fix") < text.index("Everything the diagnosis")
    assert "the cluster lets an unsigned image in" in text
    assert "ADMITTED dry-run Pod x/u" in text

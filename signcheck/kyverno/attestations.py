"""Attestations (ATT-01..05): the run's images attested with cosign's vulnerability-scan
predicate, and a policy per API that admits an image only when a vuln attestation signed by
the run's key says the scan found no critical vulnerability and finished at most `MAX_AGE`
ago.

The predicate follows cosign's vuln attestation spec (`COSIGN_VULN_ATTESTATION_SPEC.md`):
`scanner.result` is the scanner's own report, here a summary by severity.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

from signcheck.kyverno import ivpol

VULN_TYPE = "https://cosign.sigstore.dev/attestation/vuln/v1"
"""The in-toto predicate type `cosign attest --type vuln` writes."""

MAX_AGE_HOURS = 24
"""The newest scan a policy accepts is this old at most."""

STALE_DAYS = 30
"""How old the stale image's scan is (ATT-05)."""

CRITICAL_MESSAGE = "critical vulnerabilities found"
STALE_MESSAGE = f"the scan is older than {MAX_AGE_HOURS}h"
IVPOL_UNATTESTED = "no verified vuln attestation for "
IVPOL_CRITICAL = "critical vulnerabilities in "
IVPOL_STALE = f"a scan older than {MAX_AGE_HOURS}h for "


def vuln_predicate(critical: int, finished: datetime.datetime) -> dict[str, Any]:
    """A scan report: `critical` critical findings, finished at `finished` (UTC)."""
    when = finished.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "invocation": {"uri": "https://github.com/signcheck", "event_id": "signcheck"},
        "scanner": {
            "uri": "pkg:generic/signcheck-scan",
            "version": "1",
            "result": {"summary": {"critical": critical, "high": 1, "medium": 3}},
        },
        "metadata": {"scanStartedOn": when, "scanFinishedOn": when},
    }


def require_vuln_scan_cpol(doc: dict[str, Any]) -> dict[str, Any]:
    """The ClusterPolicy `doc` with its verifyImages rule also requiring the vuln attestation,
    signed by the rule's own attestors (Kyverno checks the signature first, then this)."""
    out = copy.deepcopy(doc)
    verify = out["spec"]["rules"][0]["verifyImages"][0]
    verify["attestations"] = [
        {
            "type": VULN_TYPE,
            "attestors": copy.deepcopy(verify["attestors"]),
            "conditions": [
                {
                    "all": [
                        {
                            "key": "{{ scanner.result.summary.critical }}",
                            "operator": "Equals",
                            "value": 0,
                            "message": CRITICAL_MESSAGE,
                        },
                        {
                            "key": "{{ time_since('', '{{ metadata.scanFinishedOn }}', '') }}",
                            "operator": "LessThanOrEquals",
                            "value": f"{MAX_AGE_HOURS}h",
                            "message": STALE_MESSAGE,
                        },
                    ]
                }
            ],
        }
    ]
    return out


def require_vuln_scan_ivpol(doc: dict[str, Any]) -> dict[str, Any]:
    """The ImageValidatingPolicy `doc` also requiring, of every image its signature check
    covers, a vuln attestation verified by its attestors, without critical findings, recent;
    each message names the images that fail it."""
    out = copy.deepcopy(doc)
    body = out["spec"]
    attestors = ", ".join(f"attestors.{a['name']}" for a in body["attestors"])
    images = ivpol.ALL_IMAGES
    body["attestations"] = [{"name": "vuln", "intoto": {"type": VULN_TYPE}}]
    payload = "extractPayload(image, attestations.vuln)"
    attested = "!(image in variables.unattested)"
    body["variables"] += [
        {
            "name": "unattested",
            "expression": f"({images}).filter(image, "
            f"verifyAttestationSignatures(image, attestations.vuln, [{attestors}]) == 0)",
        },
        {
            "name": "critical",
            "expression": f"({images}).filter(image, {attested} && "
            f"{payload}.scanner.result.summary.critical != 0)",
        },
        {
            "name": "stale",
            "expression": f"({images}).filter(image, {attested} && time.now() - "
            f"timestamp({payload}.metadata.scanFinishedOn) > duration('{MAX_AGE_HOURS}h'))",
        },
    ]
    # A payload is read only from an image whose attestation verified (CEL's && is false
    # when its left side is, whatever an extractPayload on the right would have raised).
    for name, message in (
        ("unattested", IVPOL_UNATTESTED),
        ("critical", IVPOL_CRITICAL),
        ("stale", IVPOL_STALE),
    ):
        body["validations"].append(
            {
                "expression": f"size(variables.{name}) == 0",
                "messageExpression": f"'{message}' + variables.{name}.join(', ')",
            }
        )
    return out

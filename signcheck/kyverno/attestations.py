"""Attestations: predicates and the policies that require them, per API.

- ATT-01..06: cosign's vulnerability-scan predicate; admitted only when a vuln attestation
  signed by the run's key says the scan found no critical vulnerability and finished at most
  `MAX_AGE_HOURS` ago;
- ATT-07/08: a CycloneDX SBOM and SLSA v1 provenance; admitted only with both, signed by the
  run's key, the provenance naming the run's builder.

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
SBOM_TYPE = "https://cyclonedx.org/bom"
"""`cosign attest --type cyclonedx`."""
PROVENANCE_TYPE = "https://slsa.dev/provenance/v1"
"""`cosign attest --type slsaprovenance1`."""

BUILDER = "https://signcheck.dev/builders/release@v1"
"""The builder the supply-chain policy trusts (SLSA `runDetails.builder.id`)."""
OTHER_BUILDER = "https://signcheck.dev/builders/laptop@v1"

MAX_AGE_HOURS = 24
"""The newest scan a policy accepts is this old at most."""

STALE_DAYS = 30
"""How old the stale image's scan is (ATT-05)."""

CRITICAL_MESSAGE = "critical vulnerabilities found"
STALE_MESSAGE = f"the scan is older than {MAX_AGE_HOURS}h"
IVPOL_UNATTESTED = "no verified vuln attestation for "
IVPOL_CRITICAL = "critical vulnerabilities in "
IVPOL_STALE = f"a scan older than {MAX_AGE_HOURS}h for "
BUILDER_MESSAGE = "the image was not built by the trusted builder"
SBOM_MESSAGE = "the SBOM is not CycloneDX"
IVPOL_NO_SBOM = "no verified SBOM attestation for "
IVPOL_NO_PROVENANCE = "no verified provenance attestation for "
IVPOL_BUILDER = "not built by the trusted builder: "


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


def cyclonedx_predicate() -> dict[str, Any]:
    """A minimal CycloneDX 1.5 SBOM: the image's one component."""
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "components": [{"type": "application", "name": "signcheck-app", "version": "1"}],
    }


def provenance_predicate(builder: str) -> dict[str, Any]:
    """SLSA v1 provenance naming `builder` as what ran the build."""
    return {
        "buildDefinition": {
            "buildType": "https://signcheck.dev/build/v1",
            "externalParameters": {"source": "git+https://example.invalid/app@refs/tags/v1"},
        },
        "runDetails": {"builder": {"id": builder}},
    }


def _cpol_requirement(
    verify: dict[str, Any], type_: str, key: str, op: str, value: object, message: str
) -> dict[str, Any]:
    """One `attestations` entry: `type_` signed by the rule's own attestors, one condition."""
    condition = {"key": key, "operator": op, "value": value, "message": message}
    return {
        "type": type_,
        "attestors": copy.deepcopy(verify["attestors"]),
        "conditions": [{"all": [condition]}],
    }


def require_supply_chain_cpol(doc: dict[str, Any]) -> dict[str, Any]:
    """The ClusterPolicy `doc` also requiring a CycloneDX SBOM and SLSA provenance from the
    trusted builder, both signed by the rule's attestors."""
    out = copy.deepcopy(doc)
    verify = out["spec"]["rules"][0]["verifyImages"][0]
    verify["attestations"] = [
        _cpol_requirement(
            verify, SBOM_TYPE, "{{ bomFormat }}", "Equals", "CycloneDX", SBOM_MESSAGE
        ),
        _cpol_requirement(
            verify,
            PROVENANCE_TYPE,
            "{{ runDetails.builder.id }}",
            "Equals",
            BUILDER,
            BUILDER_MESSAGE,
        ),
    ]
    return out


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


def _ivpol_requirements(
    doc: dict[str, Any],
    attestations: dict[str, str],
    checks: list[tuple[str, str, str]],
) -> dict[str, Any]:
    """The ImageValidatingPolicy `doc` also requiring, of every image its signature check
    covers, each of `attestations` (name -> predicate type) verified by its attestors, then
    `checks`: (variable, CEL filter over `image`, message). A variable `unattested_<name>`
    holds the images without a verified `<name>`; each message names the images that fail."""
    out = copy.deepcopy(doc)
    body = out["spec"]
    attestors = ", ".join(f"attestors.{a['name']}" for a in body["attestors"])
    images = ivpol.ALL_IMAGES
    body["attestations"] = [{"name": n, "intoto": {"type": t}} for n, t in attestations.items()]
    variables = [
        (
            f"unattested_{name}",
            f"verifyAttestationSignatures(image, attestations.{name}, [{attestors}]) == 0",
        )
        for name in attestations
    ]
    variables += [(name, expression) for name, expression, _ in checks]
    body["variables"] += [
        {"name": name, "expression": f"({images}).filter(image, {expression})"}
        for name, expression in variables
    ]
    messages = [(f"unattested_{n}", m) for n, m in UNATTESTED_MESSAGES.items() if n in attestations]
    for name, message in [*messages, *((n, m) for n, _, m in checks)]:
        body["validations"].append(
            {
                "expression": f"size(variables.{name}) == 0",
                "messageExpression": f"'{message}' + variables.{name}.join(', ')",
            }
        )
    return out


UNATTESTED_MESSAGES = {
    "vuln": IVPOL_UNATTESTED,
    "sbom": IVPOL_NO_SBOM,
    "provenance": IVPOL_NO_PROVENANCE,
}


def require_vuln_scan_ivpol(doc: dict[str, Any]) -> dict[str, Any]:
    """The ImageValidatingPolicy twin of `require_vuln_scan_cpol`."""
    # A payload is read only from an image whose attestation verified (CEL's && is false
    # when its left side is, whatever an extractPayload on the right would have raised).
    attested = "!(image in variables.unattested_vuln)"
    payload = "extractPayload(image, attestations.vuln)"
    return _ivpol_requirements(
        doc,
        {"vuln": VULN_TYPE},
        [
            (
                "critical",
                f"{attested} && {payload}.scanner.result.summary.critical != 0",
                IVPOL_CRITICAL,
            ),
            (
                "stale",
                f"{attested} && time.now() - timestamp({payload}.metadata.scanFinishedOn) > "
                f"duration('{MAX_AGE_HOURS}h')",
                IVPOL_STALE,
            ),
        ],
    )


def require_supply_chain_ivpol(doc: dict[str, Any]) -> dict[str, Any]:
    """The ImageValidatingPolicy twin of `require_supply_chain_cpol`."""
    attested = "!(image in variables.unattested_provenance)"
    payload = "extractPayload(image, attestations.provenance)"
    return _ivpol_requirements(
        doc,
        {"sbom": SBOM_TYPE, "provenance": PROVENANCE_TYPE},
        [
            (
                "wrong_builder",
                f"{attested} && {payload}.runDetails.builder.id != '{BUILDER}'",
                IVPOL_BUILDER,
            )
        ],
    )

"""ATT's images and their attestations, made in the session's signing batch: every ATT image
is signed with the run's key; each attestation is one `cosign attest` (legacy `.att` tag, no
transparency log) of a predicate written here (`signcheck.kyverno.attestations`).

- the vulnerability-scan family (ATT-01..06): critical findings and the scan's age vary;
- the supply-chain family (ATT-07/08): a CycloneDX SBOM and SLSA v1 provenance whose builder
  varies, or the SBOM left out.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from signcheck.clients import oci
from signcheck.kyverno import attestations
from signcheck.run.context import RunContext
from signcheck.tools.cosign import Cosign, KeyPair, SignatureFormat

Predicate = Callable[[], dict[str, Any]]


def _vuln(critical: int, days: int) -> tuple[str, Predicate]:
    def make() -> dict[str, Any]:
        finished = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=days)
        return attestations.vuln_predicate(critical, finished)

    return "vuln", make


def _sbom() -> tuple[str, Predicate]:
    return "cyclonedx", attestations.cyclonedx_predicate


def _provenance(builder: str) -> tuple[str, Predicate]:
    return "slsaprovenance1", lambda: attestations.provenance_predicate(builder)


ATTESTED: dict[str, list[tuple[str, tuple[str, Predicate]]]] = {
    "att-compliant": [("main", _vuln(0, 0))],
    "att-critical": [("main", _vuln(2, 0))],
    "att-otherkey": [("other", _vuln(0, 0))],
    "att-stale": [("main", _vuln(0, attestations.STALE_DAYS))],
    "att-tampered": [("main", _vuln(2, 0))],
    "att-supply-ok": [("main", _sbom()), ("main", _provenance(attestations.BUILDER))],
    "att-supply-nosbom": [("main", _provenance(attestations.BUILDER))],
    "att-supply-builder": [("main", _sbom()), ("main", _provenance(attestations.OTHER_BUILDER))],
}
"""Role -> (the key that attests, (cosign's predicate type, the predicate)) per attestation.
`att-tampered`'s statement is edited by ATT-06."""

FORMATS: dict[str, tuple[str, SignatureFormat]] = {
    "att-fmt-cosign-v2-legacy": ("cosign-v2", "legacy"),
    "att-fmt-cosign-v3-legacy": ("cosign-v3", "legacy"),
    "att-fmt-cosign-v3-bundle": ("cosign-v3", "bundle"),
}
"""COMPAT-02's images: role -> the cosign and format of its (compliant) vuln attestation.
Each is signed both ways (legacy `.sig` and a v3 bundle), so every policy's signature check
passes and only the attestation's format differs."""

IMAGES = ("att-missing", *ATTESTED, *FORMATS)
"""Every ATT image; `att-missing` is signed and not attested."""


def attest_all(
    res: RunContext,
    cosign: Cosign,
    keys: dict[str, KeyPair],
    images: dict[str, oci.PushedImage],
    tools: dict[str, Cosign | None],
) -> None:
    """Every attestation of `ATTESTED` and `FORMATS` (with the cosign `tools` name; one that
    could not be built is left out, and COMPAT-02 reports that cell not measured), a few
    cosign processes at a time."""
    directory = res.target.run_dir / "attestations"
    directory.mkdir(parents=True, exist_ok=True)

    def attest(role: str) -> None:
        # One image's attestations one after the other: cosign adds each to the image's one
        # `.att` manifest (read, append, write), so two at once could lose one.
        for i, (key, (kind, make)) in enumerate(ATTESTED[role]):
            predicate = directory / f"{role}-{i}.json"
            predicate.write_text(json.dumps(make()))
            cosign.attest(keys[key], images[role].by_digest, predicate, kind)

    def attest_format(role: str) -> None:
        tool, fmt = FORMATS[role]
        if (other := tools.get(tool)) is not None:
            predicate = directory / f"{role}.json"
            predicate.write_text(json.dumps(_vuln(0, 0)[1]()))
            other.attest(keys["main"], images[role].by_digest, predicate, "vuln", fmt)

    with ThreadPoolExecutor(max_workers=4) as pool:
        done = [pool.submit(attest, r) for r in ATTESTED]
        done += [pool.submit(attest_format, r) for r in FORMATS]
        for future in done:
            future.result()

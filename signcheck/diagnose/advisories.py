"""Published Kyverno advisories that concern image verification, and which of them a running
Kyverno version is in.

The table holds only advisories with a public record that was read for it (`evidence`): the
affected range and fixed version are the published ones, not guesses. Left out on purpose:
CVE-2023-42813/42814/42815/42816 (the Notary verifier's denial of service), which affected
only builds of Kyverno's main branch, never a release.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from signcheck.verdict.model import Severity


@dataclass(frozen=True)
class Advisory:
    id: str
    aliases: tuple[str, ...]
    title: str
    introduced: str
    """The first affected version ("0": every version before `fixed`)."""
    fixed: str | None
    """The first version without the flaw; None: no fixed release is known."""
    severity: Severity
    """Ours, by the definitions in `signcheck.verdict.model`, for a cluster in the range."""
    remediation: str
    evidence: tuple[str, ...]
    """Where the range and the fix were read."""

    @property
    def url(self) -> str:
        return f"https://github.com/kyverno/kyverno/security/advisories/{self.id}"

    @property
    def range(self) -> str:
        low = "" if self.introduced == "0" else f">= {self.introduced}, "
        return f"{low}< {self.fixed}" if self.fixed else f">= {self.introduced}, no fix"


ADVISORIES: tuple[Advisory, ...] = (
    Advisory(
        "GHSA-m3cq-xcx9-3gvm",
        ("CVE-2022-47633",),
        "verifyImages rule bypass with a malicious proxy or registry",
        "1.8.3",
        "1.8.5",
        "high",
        "upgrade Kyverno to 1.8.5 or later; until then restrict images to trusted registries",
        (
            "https://github.com/advisories/GHSA-m3cq-xcx9-3gvm",
            "https://github.com/golang/vulndb/issues/1180",
        ),
    ),
    Advisory(
        "GHSA-3hfq-cx9j-923w",
        ("CVE-2023-47630",),
        "a compromised registry can make Kyverno pin an image to a digest of its choosing",
        "0",
        "1.10.5",
        "high",
        "upgrade Kyverno to 1.10.5 or later (the advisory's text names 1.11.0); reference "
        "images by digest from trusted registries",
        (
            "https://github.com/advisories/GHSA-3hfq-cx9j-923w",
            "https://github.com/golang/vulndb/issues/2340",
        ),
    ),
    Advisory(
        "GHSA-46mp-8w32-6g94",
        ("CVE-2025-29778",),
        "keyless verification ignores subjectRegExp and issuerRegExp",
        "1.13.0",
        "1.14.0-alpha.1",
        "medium",
        "upgrade Kyverno to 1.14.0 or later; until then use exact `subject`/`issuer` in "
        "keyless attestors instead of the RegExp fields",
        (
            "https://github.com/advisories/GHSA-46mp-8w32-6g94",
            "https://github.com/kyverno/kyverno/pull/12237",
        ),
    ),
    Advisory(
        "GHSA-2r43-6962-xcw5",
        ("CVE-2026-122321",),
        "verifyImages cache keyed by the image reference (a tag), not the verified digest: a "
        "re-pointed tag is admitted from the cache and mutateDigest pins the unsigned digest",
        "1.18.0",
        "1.19.2",
        "high",
        "upgrade Kyverno to 1.19.2 or later; until then set `useCache: false` on every "
        "verifyImages rule or start Kyverno with --imageVerifyCacheEnabled=false",
        (
            # The fix's pull request names the GHSA; the CVE record (VulnCheck) describes
            # the same flaw and gives the range.
            "https://github.com/kyverno/kyverno/pull/16213",
            "https://raw.githubusercontent.com/CVEProject/cvelistV5/main/cves/2026/122xxx/"
            "CVE-2026-122321.json",
        ),
    ),
)

_SEMVER = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")

VersionKey = tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]


def version_key(text: str) -> VersionKey | None:
    """A sortable key for a semantic version (`v1.19.1`, `1.14.0-alpha.1`); None when `text`
    is no version (a tag like `latest`). A pre-release sorts before its release."""
    m = _SEMVER.match(text.strip())
    if not m:
        return None
    major, minor, patch, pre = m.group(1), m.group(2), m.group(3) or "0", m.group(4)
    if pre is None:
        return int(major), int(minor), int(patch), 1, ()
    # SemVer: numeric identifiers sort below alphanumeric ones, each by its own kind.
    parts = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    return int(major), int(minor), int(patch), 0, parts


def in_range(version: str, advisory: Advisory) -> bool | None:
    """Whether `version` is affected; None when it cannot be compared."""
    key = version_key(version)
    if key is None:
        return None
    low = version_key(advisory.introduced) if advisory.introduced != "0" else None
    if low is not None and key < low:
        return False
    high = version_key(advisory.fixed) if advisory.fixed else None
    return high is None or key < high


def affecting(version: str) -> list[Advisory] | None:
    """The advisories whose range holds `version`; None when it is no comparable version."""
    if version_key(version) is None:
        return None
    return [a for a in ADVISORIES if in_range(version, a)]

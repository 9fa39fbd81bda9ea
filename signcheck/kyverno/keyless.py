"""Keyless attestors (KEY-*): a policy that trusts a certificate authority's root and an
identity (subject and issuer, exact or as regular expressions) instead of a public key.

Both APIs get the run's seed policy with its key attestor replaced by a keyless one; the
transparency log and SCT are ignored (offline: Fulcio here has no CT log, signing has no
Rekor). A ClusterPolicy's keyless attestor requires a Rekor URL even when it ignores the log:
it names a loopback port nothing listens on, so any attempt to use it fails here instead of
leaving the machine.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

UNUSED_REKOR = "http://127.0.0.1:9"
"""Required by the ClusterPolicy schema, never contacted with `ignoreTlog: true`."""


@dataclass(frozen=True)
class Identity:
    subject: str | None = None
    issuer: str | None = None
    subject_regexp: str | None = None
    issuer_regexp: str | None = None

    def fields(self) -> dict[str, str]:
        out = {
            "subject": self.subject,
            "issuer": self.issuer,
            "subjectRegExp": self.subject_regexp,
            "issuerRegExp": self.issuer_regexp,
        }
        return {k: v for k, v in out.items() if v is not None}


def cpol(doc: dict[str, Any], identity: Identity, roots: str) -> dict[str, Any]:
    """The ClusterPolicy `doc` with one keyless attestor entry instead of its keys."""
    out = copy.deepcopy(doc)
    entry = {
        **identity.fields(),
        "roots": roots.strip(),
        "rekor": {"url": UNUSED_REKOR, "ignoreTlog": True},
        "ctlog": {"ignoreSCT": True},
    }
    out["spec"]["rules"][0]["verifyImages"][0]["attestors"] = [
        {"count": 1, "entries": [{"keyless": entry}]}
    ]
    return out


def ivpol(doc: dict[str, Any], identity: Identity, roots: str) -> dict[str, Any]:
    """The ImageValidatingPolicy `doc` with its first attestor keyless (the validations name
    attestors by name, so the name is kept and the others are dropped)."""
    out = copy.deepcopy(doc)
    first = out["spec"]["attestors"][0]
    first["cosign"] = {
        "keyless": {"identities": [identity.fields()], "roots": roots.strip()},
        "ctlog": {"insecureIgnoreTlog": True, "insecureIgnoreSCT": True},
    }
    out["spec"]["attestors"] = [first]
    return out

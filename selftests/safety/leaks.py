"""Search every output of a run for secrets, in every form a secret can take there.

The self-contained `report.html` keeps its test data as HTML-escaped JSON and each text
extra (evidence, admission responses) as a base64 `data:` URI: a plain search of the file
would miss a secret inside them, so they are unescaped and decoded first. A secret is also
looked for base64-encoded, alone and as the `user:password` pair of a Docker config.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from collections.abc import Iterable
from pathlib import Path

_DATA_URI = re.compile(r"data:[\w/.+-]+(?:;[\w=.-]+)*;base64,(?P<data>[A-Za-z0-9+/=]+)")


def html_texts(raw: str) -> dict[str, str]:
    """The report as stored, unescaped, and every base64 `data:` URI in it decoded."""
    unescaped = html.unescape(raw)
    texts = {"report.html": raw, "report.html (unescaped)": unescaped}
    for i, match in enumerate(_DATA_URI.finditer(unescaped)):
        try:
            decoded = base64.b64decode(match.group("data"), validate=True)
        except (binascii.Error, ValueError):
            continue
        texts[f"report.html (embedded #{i})"] = decoded.decode(errors="replace")
    return texts


def embedded_count(texts: dict[str, str]) -> int:
    return sum(1 for k in texts if "(embedded #" in k)


def forms(secret: str, username: str | None = None) -> dict[str, str]:
    """The ways a secret can appear in text."""
    out = {"plain": secret, "base64": base64.b64encode(secret.encode()).decode().rstrip("=")}
    if username:
        pair = f"{username}:{secret}".encode()
        out["docker auth"] = base64.b64encode(pair).decode().rstrip("=")
    return out


def files_under(root: Path, skip: Iterable[Path] = ()) -> dict[str, str]:
    skipped = {p.resolve() for p in skip}
    texts = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.resolve() not in skipped:
            texts[str(path)] = path.read_bytes().decode(errors="replace")
    return texts


def find(texts: dict[str, str], secrets: dict[str, str], username: str | None = None) -> list[str]:
    """`<secret name> (<form>) in <output>` for every occurrence."""
    found = []
    for name, secret in secrets.items():
        for form, needle in forms(secret, username).items():
            found += [f"{name} ({form}) in {where}" for where, t in texts.items() if needle in t]
    return found

"""Secrets never leave the process: every string bound for a report, log or terminal passes
through `redact` first.

Known secret values (registry passwords, COSIGN_PASSWORD, tokens) are registered once, when
they are created or read, in a process-wide set; PEM private keys and Authorization headers
are recognised by shape even when nobody registered them.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable
from typing import Any

from signcheck.errors import ConfigError

MASK = "[REDACTED]"

# Secrets shorter than this are too likely to collide with ordinary text; refuse them early
# so a short password does not silently survive redaction.
MIN_SECRET_LEN = 6

SECRET_ENV_VARS = (
    "COSIGN_PASSWORD",
    "YC_IAM_TOKEN",
    "YC_OAUTH_TOKEN",
    "SIGNCHECK_REGISTRY_PASSWORD",
    "REGISTRY_PASSWORD",
)

_PEM_PRIVATE = re.compile(r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----.*?-----END \1-----", re.DOTALL)
_AUTH_HEADER = re.compile(r"(?i)(authorization\s*[:=]\s*(?:basic|bearer)\s+)[A-Za-z0-9+/=._~-]+")
_DOCKER_AUTH = re.compile(r'("auth"\s*:\s*")[^"]+(")')

# pytest (saferepr) and other printers shorten long strings to `head...tail`; a secret cut
# that way is still a secret.
_TRUNCATED = re.compile(r"(?P<head>[^\s'\"]{3,})\.\.\.(?P<tail>[^\s'\"]{3,})")
# The characters _TRUNCATED's runs stop at: a match never spans them, so it is applied to each
# run that contains "..." alone. On a whole text it backtracks quadratically over every long
# run without "..." (a digest reference: ~250 us; a 3 KB admission message: ~190 ms).
_SEPARATORS = re.compile(r"([\s'\"]+)")

_lock = threading.Lock()
_secrets: set[str] = set()
_longest_first: tuple[str, ...] = ()


def register(*values: str | None) -> None:
    """Remember secret values so every later `redact` call masks them."""
    with _lock:
        for value in values:
            if not value:
                continue
            if len(value) < MIN_SECRET_LEN:
                # One clear error for the user, not a traceback: a password this short
                # would be masked inside unrelated words, or leak.
                raise ConfigError(
                    f"a password or token shorter than {MIN_SECRET_LEN} characters cannot be "
                    "kept out of reports reliably: use a longer one"
                )
            _secrets.add(value)
        _sort()


def _sort() -> None:
    global _longest_first
    # Longest first, so a secret that contains another is masked whole.
    _longest_first = tuple(sorted(_secrets, key=len, reverse=True))


def register_env(names: Iterable[str] = SECRET_ENV_VARS) -> None:
    for name in names:
        value = os.environ.get(name)
        if value and len(value) >= MIN_SECRET_LEN:
            register(value)


def known() -> frozenset[str]:
    with _lock:
        return frozenset(_secrets)


def redact(text: str) -> str:
    if not text:
        return text
    for secret in _longest_first:
        if secret in text:
            text = text.replace(secret, MASK)
    if "..." in text and _longest_first:
        text = "".join(
            _TRUNCATED.sub(_mask_truncated, run) if "..." in run else run
            for run in _SEPARATORS.split(text)
        )
    if "PRIVATE KEY-----" in text:
        text = _PEM_PRIVATE.sub(f"-----BEGIN \\1-----{MASK}-----END \\1-----", text)
    text = _AUTH_HEADER.sub(rf"\g<1>{MASK}", text)
    if '"auth"' in text:
        text = _DOCKER_AUTH.sub(rf"\g<1>{MASK}\g<2>", text)
    return text


def _mask_truncated(match: re.Match[str]) -> str:
    head, tail = match.group("head"), match.group("tail")
    for secret in known():
        # Only the secret's own start and end, and long enough not to be a coincidence.
        for cut in range(len(head)):
            piece = head[cut:]
            if len(piece) + len(tail) < MIN_SECRET_LEN:
                break
            if secret.startswith(piece) and secret.endswith(tail):
                return head[:cut] + MASK
    return match.group(0)


def redact_obj(value: Any) -> Any:
    """Redact every string inside nested dicts/lists/tuples (report models, JSON)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_obj(k): redact_obj(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_obj(v) for v in value)
    return value

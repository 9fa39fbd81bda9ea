"""Readiness probes: small HTTP(S) GETs whose failures read well as a last observation."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Collection
from pathlib import Path

from signcheck.wait import NotYet


def ssl_context(
    ca: Path | None = None, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    if ca is None:
        # Components that make their own throwaway serving cert (controller-manager,
        # scheduler) are probed on loopback for liveness only, never trusted with data.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key else None)
    return ctx


def http_get(
    url: str, *, context: ssl.SSLContext | None = None, timeout: float = 2.0
) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            return int(resp.status), resp.read(4096).decode(errors="replace")
    except urllib.error.HTTPError as err:
        return int(err.code), err.read(4096).decode(errors="replace")
    except urllib.error.URLError as err:
        reason = err.reason
        raise ConnectionError(str(reason)) from None


def http_probe(
    url: str,
    *,
    context: ssl.SSLContext | None = None,
    ok: Collection[int] = (200,),
    timeout: float = 2.0,
) -> Callable[[], bool]:
    def probe() -> bool:
        status, body = http_get(url, context=context, timeout=timeout)
        if status not in ok:
            raise NotYet(f"GET {url} -> {status}: {body.strip()[:300]}")
        return True

    return probe

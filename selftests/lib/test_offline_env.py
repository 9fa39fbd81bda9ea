"""Kyverno's processes on the local target reach nothing beyond loopback: Kyverno v1.18.2
asks the public Sigstore TUF mirror whatever --enableTuf says, and a run must not send a
packet (not even a DNS query) off this machine."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from signcheck.localenv.services import kyverno


def test_kyverno_env_sends_everything_but_loopback_to_a_closed_loopback_port() -> None:
    env = kyverno._common_env("pod", "sa", None, Path("/tmp"))
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        proxy = urlparse(env[name])
        assert proxy.hostname == "127.0.0.1", name
    for name in ("NO_PROXY", "no_proxy"):
        assert {"127.0.0.1", "localhost", "::1"} <= set(env[name].split(","))

from __future__ import annotations

import pytest

from signcheck import redact
from signcheck.errors import ConfigError


def test_registered_values_pem_and_auth_headers_are_masked() -> None:
    redact.register("s3cret-value-123")
    text = (
        "password=s3cret-value-123\n"
        "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nabc\ndef\n"
        "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
        "Authorization: Basic dXNlcjpwYXNz\n"
        '{"auths": {"r": {"auth": "dXNlcjpwYXNz"}}}'
    )
    out = redact.redact(text)
    assert "s3cret-value-123" not in out
    assert "abc" not in out and "PRIVATE KEY-----" in out
    assert "dXNlcjpwYXNz" not in out


def test_nested_objects() -> None:
    redact.register("another-secret-xyz")
    assert redact.redact_obj({"a": ["x another-secret-xyz"]}) == {"a": ["x [REDACTED]"]}


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ConfigError, match="shorter than"):
        redact.register("abc")


def test_truncated_reprs_of_secrets_are_masked() -> None:
    redact.register("planted-registry-password-77c1")
    out = redact.redact("assert 'planted-regi...password-77c1' == 'x'")
    assert "planted-regi" not in out and "77c1" not in out
    assert redact.redact("a...b and foo...bar stay") == "a...b and foo...bar stay"


def test_truncation_masking_run_by_run_matches_the_whole_text() -> None:
    """`redact` applies the truncation pattern to each run between whitespace and quotes
    (on a whole text it backtracks quadratically); its matches never span those
    characters, so the result is the whole-text substitution's, "..." runs of any shape."""
    redact.register("planted-registry-password-77c1")
    texts = [
        "x planted-regi...password-77c1 y",
        "'planted-regi...password-77c1'\t\"planted...77c1\"",
        "a...planted-regi...password-77c1...b",
        "planted-registry-p...d-77c1\nplanted...-77c1x ... ...77c1",
        "sha256:" + "a" * 300 + "...password-77c1",
    ]
    for text in texts:
        whole = redact._TRUNCATED.sub(redact._mask_truncated, text)
        assert redact.redact(text) == whole, text

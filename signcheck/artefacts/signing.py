"""The run's signing key: a key pair generated per run (the default), the user's own
`cosign.key`, or a key held in a KMS (`hashivault://`, `yckms://`...), as the seed signs.

Whatever the kind, the result is a `KeyPair` whose public key is a PEM file the policy
embeds; a KMS key signs through its reference and never leaves the KMS. Bad keys are found
here, before any test: a missing or malformed file, a wrong password, a public key that
belongs to another private key, a KMS the credentials cannot reach.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from signcheck import redact
from signcheck.artefacts import kms
from signcheck.errors import ConfigError, SigncheckError
from signcheck.settings.config import Settings
from signcheck.tools.cosign import Cosign, KeyPair

PASSWORD_ENV = ("SIGNCHECK_COSIGN_PASSWORD", "COSIGN_PASSWORD")


def key_password(environ: dict[str, str] | None = None) -> str:
    environ = dict(os.environ if environ is None else environ)
    for name in PASSWORD_ENV:
        if environ.get(name):
            redact.register(environ[name])
            return environ[name]
    return ""


def same_public_key(pem_a: str, pem_b: str) -> bool:
    """Whether two PEM public keys are the same key (whatever their line wrapping)."""

    def der(pem: str) -> bytes:
        key = serialization.load_pem_public_key(pem.encode())
        return key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    return der(pem_a) == der(pem_b)


def _read_public_key(path: Path) -> str:
    text = path.read_text(errors="replace")
    try:
        serialization.load_pem_public_key(text.encode())
    except ValueError:
        raise ConfigError(
            f"--public-key {path} is not a PEM public key: give the cosign.pub written by "
            "`cosign generate-key-pair`"
        ) from None
    return text


def key_file(cosign: Cosign, path: Path, public_key: Path | None, keys_dir: Path) -> KeyPair:
    """The user's `cosign.key`, checked: it exists, is a cosign private key, the password
    opens it, and `public_key` (when given) is its public half."""
    if not path.is_file():
        raise ConfigError(f"--signing-key {path} does not exist: give the path of a cosign.key")
    head = path.read_text(errors="replace")[:200]
    if "-----BEGIN" not in head or "PRIVATE KEY-----" not in head:
        raise ConfigError(
            f"--signing-key {path} is not a cosign private key (no PEM private key block): "
            "give the cosign.key written by `cosign generate-key-pair`"
        )
    password = key_password()
    result = cosign.run(["public-key", "--key", str(path)], password)
    if result.returncode != 0:
        err = result.error
        if "decryption failed" in err:
            raise ConfigError(
                f"the password for --signing-key {path} is wrong: export the key's password "
                f"in COSIGN_PASSWORD (or SIGNCHECK_COSIGN_PASSWORD); cosign said: {err}"
            )
        raise ConfigError(
            f"--signing-key {path} is malformed: cosign cannot read it ({err}); give the "
            "cosign.key written by `cosign generate-key-pair`"
        )
    derived = result.stdout.strip()
    if public_key is not None and not same_public_key(_read_public_key(public_key), derived):
        raise ConfigError(
            f"--public-key {public_key} does not belong to --signing-key {path}: give the "
            "cosign.pub generated with that key (or leave --public-key out to derive it)"
        )
    keys_dir.mkdir(parents=True, exist_ok=True)
    pub = keys_dir / "main.pub"
    pub.write_text(derived + "\n")
    return KeyPair(path, pub, password)


def kms_key(
    cosign: Cosign, ref: str, keys_dir: Path, generate: bool, public_key: Path | None = None
) -> KeyPair:
    """A KMS key: created first when `generate` (the seed's `generate-key-pair --kms`), then
    its public key fetched through cosign, which proves the credentials reach it."""
    key = kms.from_ref(ref)
    cosign.extra_env.update(key.env)
    redact.register(*(v for k, v in key.env.items() if "TOKEN" in k or "SECRET" in k))
    keys_dir.mkdir(parents=True, exist_ok=True)
    use = key.ref
    if generate:
        created = cosign.run(["generate-key-pair", "--kms", key.create_ref], cwd=keys_dir)
        if created.returncode != 0:
            raise ConfigError(
                f"cosign could not create the KMS key {key.create_ref}: {created.error}"
            )
        use = kms.created_ref(key, created.stdout + "\n" + created.stderr)
    result = cosign.run(["public-key", "--key", use])
    if result.returncode != 0:
        hint = ""
        if "unrecognized scheme" in result.error:
            hint = (
                f" (this cosign has no {key.provider} provider: put the provider's "
                f"sigstore-kms-{key.provider} plugin on PATH, or point SIGNCHECK_COSIGN_V2 at "
                "a cosign build that has it)"
            )
        raise ConfigError(f"cosign cannot use the KMS key {use}: {result.error}{hint}")
    derived = result.stdout.strip()
    if public_key is not None and not same_public_key(_read_public_key(public_key), derived):
        raise ConfigError(
            f"--public-key {public_key} is not the public key of the KMS key {use}: leave "
            "--public-key out (cosign fetches it) or give the right one"
        )
    pub = keys_dir / "main.pub"
    pub.write_text(derived + "\n")
    marker = keys_dir / "main.kms"
    marker.write_text(use + "\n")
    return KeyPair(marker, pub, "", ref=use, env=dict(key.env))


def main_key(settings: Settings, cosign: Cosign, keys_dir: Path, create: bool) -> KeyPair | None:
    """The configured signing key, checked; None means "generate a key pair per run".

    `create=False` (preflight) never creates a KMS key: it only checks the credentials."""
    ref = settings.signing_key
    if not ref:
        return None
    if settings.kms_key:
        if settings.kms_generate and not create:
            key = kms.from_ref(ref)
            cosign.extra_env.update(key.env)
            return None
        return kms_key(cosign, ref, keys_dir, settings.kms_generate, settings.public_key)
    return key_file(cosign, Path(ref).expanduser(), settings.public_key, keys_dir)


def verify_with_kms(cosign: Cosign, key: KeyPair, reference: str) -> None:
    """The seed's check after KMS signing: `cosign verify --key <kms ref>`."""
    if not key.ref:
        return
    result = cosign.verify(key.ref, reference)
    if not result.ok:
        raise SigncheckError(
            f"cosign verify --key {key.ref} {reference} failed after signing: "
            f"{result.outcome}: {result.result.error}"
        )

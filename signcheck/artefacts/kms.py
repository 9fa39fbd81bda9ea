"""KMS-held signing keys: the reference cosign takes, and the credentials it needs.

The seed signs with a Yandex KMS key (`yckms://`); locally the same flow runs against
local-kms, an AWS KMS stand-in, through cosign's `awskms://` provider
(`signcheck.localenv.services.localkms`).
Either way cosign gets a key *reference* instead of a `cosign.key` file, and the credentials
travel only in the environment of the cosign process, never in argv, logs or reports.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from signcheck.errors import ConfigError

_YC_CREDENTIALS = ("YC_IAM_TOKEN", "YC_OAUTH_TOKEN", "YC_SERVICE_ACCOUNT_KEY_FILE")
_KEY_ID = re.compile(r"^[a-z0-9]{20}$")

# What each provider of cosign reads from its environment (sigstore/pkg/signature/kms/*):
# (variables it needs, at least one of; variables it may use).
_PROVIDER_ENV: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "hashivault": (
        ("VAULT_TOKEN",),
        (
            "VAULT_ADDR",
            "VAULT_CACERT",
            "VAULT_NAMESPACE",
            "TRANSIT_SECRET_ENGINE_PATH",
            "VAULT_SKIP_VERIFY",
        ),
    ),
    "yckms": (_YC_CREDENTIALS, ("YC_ENDPOINT",)),
    "awskms": (
        (),
        (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_PROFILE",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_CA_BUNDLE",
        ),
    ),
    "gcpkms": ((), ("GOOGLE_APPLICATION_CREDENTIALS",)),
    "azurekms": ((), ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")),
}
_HOW = {
    "hashivault": "export VAULT_ADDR and VAULT_TOKEN",
    "yckms": "export YC_IAM_TOKEN=$(yc iam create-token) (or YC_OAUTH_TOKEN, "
    "YC_SERVICE_ACCOUNT_KEY_FILE)",
}


def from_ref(ref: str, environ: dict[str, str] | None = None) -> KmsKey:
    """The key a `--signing-key` KMS reference names, with the credentials its provider
    needs taken from the environment (and nothing else of it)."""
    environ = dict(os.environ if environ is None else environ)
    provider = ref.split("://", 1)[0]
    if provider not in _PROVIDER_ENV:
        known = ", ".join(f"{p}://" for p in _PROVIDER_ENV)
        raise ConfigError(f"--signing-key {ref!r}: unknown KMS provider; known: {known}")
    needed, optional = _PROVIDER_ENV[provider]
    env = {k: environ[k] for k in (*needed, *optional) if environ.get(k)}
    if needed and not any(k in env for k in needed):
        raise ConfigError(
            f"--signing-key {ref} needs {provider} credentials in the environment: "
            + _HOW.get(provider, "export " + " or ".join(needed))
        )
    if provider == "hashivault" and "VAULT_ADDR" not in env:
        raise ConfigError(f"--signing-key {ref} needs VAULT_ADDR (the Vault server's URL)")
    return KmsKey(ref=ref, create_ref=ref, env=env)


@dataclass(frozen=True)
class KmsKey:
    """A signing key in a KMS, as cosign addresses it."""

    ref: str
    """What `cosign sign --key` takes, e.g. `yckms:///abj...` or `hashivault://signcheck-x`."""
    create_ref: str
    """What `cosign generate-key-pair --kms` takes to create it."""
    env: dict[str, str] = field(default_factory=dict, repr=False)
    """Credentials for cosign's KMS provider; secret."""

    @property
    def provider(self) -> str:
        return self.ref.split("://", 1)[0]


def yandex_key(
    folder_id: str, name: str, key_id: str | None = None, environ: dict[str, str] | None = None
) -> KmsKey:
    """A Yandex KMS key: created as `yckms:///folder/<folder>/keyname/<name>`, then used by id.

    The id is only known after creation (cosign prints it); pass it when the key exists.
    """
    environ = dict(os.environ if environ is None else environ)
    creds = {k: environ[k] for k in _YC_CREDENTIALS if environ.get(k)}
    if not creds:
        raise ConfigError(
            "Yandex KMS signing needs credentials: set YC_IAM_TOKEN (yc iam create-token), "
            "YC_OAUTH_TOKEN or YC_SERVICE_ACCOUNT_KEY_FILE"
        )
    if key_id is not None and not _KEY_ID.match(key_id):
        raise ConfigError(f"{key_id!r} does not look like a Yandex KMS key id (20 characters)")
    create = f"yckms:///folder/{folder_id}/keyname/{name}"
    return KmsKey(ref=f"yckms:///{key_id}" if key_id else create, create_ref=create, env=creds)


def created_ref(key: KmsKey, cosign_output: str) -> str:
    """The reference to sign with after `generate-key-pair --kms`: yckms creates by folder
    and name and is used by the id it prints; other providers keep the same reference."""
    if key.provider != "yckms" or "/keyname/" not in key.create_ref:
        return key.ref
    key_id = parse_yckms_key_id(cosign_output)
    if key_id is None:
        raise ConfigError(
            "cosign created the yckms key but printed no KEY_ID; find it with "
            "`yc kms asymmetric-signature-key list` and pass --signing-key yckms:///<id>"
        )
    return f"yckms:///{key_id}"


def parse_yckms_key_id(cosign_output: str) -> str | None:
    """The key id cosign's yckms provider prints after creating a key."""
    match = re.search(r"generated yckms KEY_ID: '([a-z0-9]+)'", cosign_output)
    return match.group(1) if match else None


def vault_key(name: str, addr: str, token: str, transit_path: str = "transit") -> KmsKey:
    """A key in Vault's transit engine, through cosign's hashivault provider."""
    ref = f"hashivault://{name}"
    env = {"VAULT_ADDR": addr, "VAULT_TOKEN": token, "TRANSIT_SECRET_ENGINE_PATH": transit_path}
    return KmsKey(ref=ref, create_ref=ref, env=env)


def aws_key(alias: str, endpoint: str | None, env: dict[str, str]) -> KmsKey:
    """An AWS-KMS-API key by alias (`awskms://[endpoint]/alias/<name>`), created on demand."""
    prefix = f"awskms://{endpoint}/" if endpoint else "awskms:///"
    ref = f"{prefix}alias/{alias}"
    return KmsKey(ref=ref, create_ref=ref, env=dict(env))

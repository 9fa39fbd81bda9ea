"""KMS-held signing keys: the reference cosign takes, and the credentials it needs.

The seed signs with a Yandex KMS key (`yckms://`); locally the same flow runs against a real
Vault transit engine (`hashivault://`). Either way cosign gets a key *reference* instead of a
`cosign.key` file, and the credentials travel only in the environment of the cosign process,
never in argv, logs or reports.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from signcheck.errors import ConfigError

_YC_CREDENTIALS = ("YC_IAM_TOKEN", "YC_OAUTH_TOKEN", "YC_SERVICE_ACCOUNT_KEY_FILE")
_KEY_ID = re.compile(r"^[a-z0-9]{20}$")


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

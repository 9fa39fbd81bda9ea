"""The suite's settings: from pytest options, then environment variables, validated once.

Timeouts are named per kind of wait and overridable with `SIGNCHECK_TIMEOUT_<NAME>` (the
local environment's own boot timeouts live in `signcheck.localenv.settings`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from signcheck.errors import ConfigError

TargetName = Literal["local", "cluster", "yandex"]
TARGETS: tuple[TargetName, ...] = ("local", "cluster", "yandex")
COSIGN_TOOLS = ("cosign-v2", "cosign-v3")
SABOTAGE = ("none", "no-policy", "audit", "other-key")
"""Deliberately broken setups, so a selftest can prove the suite notices (issue 4)."""


@dataclass(frozen=True)
class Timeouts:
    """Seconds per kind of wait."""

    env_boot: float = 600.0
    policy_ready: float = 90.0
    pod_running: float = 60.0
    namespace_delete: float = 90.0
    cosign: float = 120.0
    shared_setup: float = 900.0
    """How long an xdist worker waits for another to finish creating session resources."""

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Timeouts:
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, float] = {}
        for f in fields(cls):
            name = f"SIGNCHECK_TIMEOUT_{f.name.upper()}"
            raw = environ.get(name)
            if raw is None:
                continue
            try:
                values[f.name] = float(raw)
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
            if values[f.name] <= 0:
                raise ConfigError(f"{name} must be positive, got {raw}")
        return cls(**values)


@dataclass(frozen=True)
class Settings:
    target: TargetName = "local"
    kubeconfig: Path | None = None
    context: str | None = None
    registry: str | None = None
    """host[:port] of the registry for the cluster targets."""
    registry_scheme: Literal["http", "https"] = "https"
    registry_ca: Path | None = None
    registry_username: str | None = None
    registry_prefix: str = "signcheck"
    kyverno_namespace: str = "kyverno"
    cosign_tool: str = "cosign-v2"
    seed_exact_policy: bool = False
    keep: bool = False
    reports_dir: Path = Path("reports")
    sabotage: str = "none"
    timeouts: Timeouts = field(default_factory=Timeouts)

    @property
    def registry_password(self) -> str | None:
        # Only ever from the environment: a password on the command line ends up in shell
        # history, CI logs and the JUnit report's argv.
        return os.environ.get("SIGNCHECK_REGISTRY_PASSWORD") or None

    def validate(self) -> Settings:
        if self.target not in TARGETS:
            raise ConfigError(f"unknown target {self.target!r}: choose one of {', '.join(TARGETS)}")
        if self.cosign_tool not in COSIGN_TOOLS:
            raise ConfigError(
                f"unknown cosign tool {self.cosign_tool!r}: choose one of {', '.join(COSIGN_TOOLS)}"
            )
        if self.sabotage not in SABOTAGE:
            raise ConfigError(f"unknown --signcheck-sabotage {self.sabotage!r}: {SABOTAGE}")
        if self.target != "local":
            if not self.registry:
                raise ConfigError(
                    f"--target {self.target} needs --registry HOST[:PORT] (the registry the "
                    "cluster pulls from)"
                )
            kubeconfig = self.kubeconfig or _default_kubeconfig()
            if not kubeconfig.is_file():
                raise ConfigError(
                    f"--target {self.target} needs a kubeconfig: {kubeconfig} does not exist "
                    "(pass --kubeconfig or set KUBECONFIG)"
                )
        if self.registry_ca and not self.registry_ca.is_file():
            raise ConfigError(f"--registry-ca {self.registry_ca} does not exist")
        if self.registry_username and not self.registry_password:
            raise ConfigError(
                "--registry-username is set but SIGNCHECK_REGISTRY_PASSWORD is not: "
                "export the password in the environment"
            )
        return self

    def resolved_kubeconfig(self) -> Path:
        return self.kubeconfig or _default_kubeconfig()


def _default_kubeconfig() -> Path:
    env = os.environ.get("KUBECONFIG", "")
    first = env.split(os.pathsep)[0] if env else ""
    return Path(first) if first else Path.home() / ".kube" / "config"


def as_target(value: str) -> TargetName:
    if value not in TARGETS:
        raise ConfigError(f"unknown target {value!r}: choose one of {', '.join(TARGETS)}")
    return value

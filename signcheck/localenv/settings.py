"""Every knob of the local environment in one place: timeouts per kind of wait, where runs
live, and the registry's shape. Environment variables override the defaults so CI can
stretch a timeout without a code change (`SIGNCHECK_TIMEOUT_ENV_BOOT=300`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from signcheck import tools
from signcheck.errors import ConfigError


@dataclass(frozen=True)
class Timeouts:
    """Seconds. One field per kind of wait, so an error can name the one that expired."""

    env_boot: float = 180.0
    service_ready: float = 60.0
    kyverno_ready: float = 120.0
    policy_ready: float = 60.0
    stop: float = 5.0
    api_call: float = 15.0
    poll_interval: float = 0.1

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Timeouts:
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, float] = {}
        for f in fields(cls):
            raw = environ.get(f"SIGNCHECK_TIMEOUT_{f.name.upper()}")
            if raw is None:
                continue
            try:
                values[f.name] = float(raw)
            except ValueError:
                raise ConfigError(
                    f"SIGNCHECK_TIMEOUT_{f.name.upper()}={raw!r} is not a number of seconds"
                ) from None
            if values[f.name] <= 0:
                raise ConfigError(f"SIGNCHECK_TIMEOUT_{f.name.upper()} must be positive")
        return cls(**values)


def runs_root() -> Path:
    """Where run directories live: `$SIGNCHECK_RUN_DIR`, else `<tool cache>/runs`."""
    if env := os.environ.get("SIGNCHECK_RUN_DIR"):
        return Path(env)
    return tools.cache_root() / "runs"


@dataclass(frozen=True)
class Settings:
    timeouts: Timeouts = field(default_factory=Timeouts.from_env)
    runs_root: Path = field(default_factory=runs_root)
    keep: bool = False
    registry_auth: bool = False
    registry_tls: bool = False
    nodes: int = 2
    reports_controller: bool = True
    #: Start etcd from a cached copy that already holds Kyverno's CRDs (see `seed`).
    seed_etcd: bool = True
    run_id: str | None = None

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ConfigError(f"nodes must be at least 1, got {self.nodes}")

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

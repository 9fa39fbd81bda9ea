"""Every timeout signcheck has, in one object: seconds per kind of wait.

Each is overridable with `SIGNCHECK_TIMEOUT_<NAME>` (`SIGNCHECK_TIMEOUT_ENV_BOOT=300`), so
CI can stretch one wait without a code change, and an expired wait can name the field that
governs it. The local environment and the suite read the same object, so one variable
means one thing everywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from signcheck.errors import ConfigError


@dataclass(frozen=True)
class Timeouts:
    env_boot: float = 180.0
    """The local environment, from the first process to Ready."""
    service_ready: float = 60.0
    """One local service (etcd, apiserver, ...) answering its readiness check."""
    kyverno_ready: float = 180.0
    """Kyverno's webhooks registered and answering (on a cluster: after a Helm install)."""
    policy_ready: float = 90.0
    pod_running: float = 60.0
    namespace_delete: float = 90.0
    #: After `helm uninstall`, until every object the release made is gone.
    release_delete: float = 120.0
    cosign: float = 120.0
    provision: float = 1800.0
    """`--provision`: Terraform apply of the Yandex infrastructure."""
    policy_report: float = 120.0
    """Kyverno's reports controller aggregates admission results after a fixed delay."""
    shared_setup: float = 900.0
    """How long an xdist worker waits for another to finish creating session resources."""
    stop: float = 5.0
    """SIGTERM to SIGKILL for a local process."""
    api_call: float = 15.0
    poll_interval: float = 0.1

    def target_boot(self, *, provisioning: bool) -> float:
        """How long an xdist worker waits for the owner process to bring up the target: the
        environment's boot, Kyverno's readiness, and Terraform when it provisions."""
        return self.env_boot + self.kyverno_ready + (self.provision if provisioning else 0.0)

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

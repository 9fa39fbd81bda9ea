"""What a running environment tells its users: where things are, never a secret itself.

Registry credentials stay in a 0600 file; the info carries its path, and
`RegistryInfo.credentials()` reads it for code that needs them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RegistryInfo:
    host: str
    scheme: str
    tls: bool
    auth: bool
    ca_path: str | None = None
    credentials_path: str | None = None
    docker_config_dir: str | None = None
    pull_secret: str | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def credentials(self) -> tuple[str, str] | None:
        """(username, password) from the credentials file, None without auth."""
        if not self.credentials_path:
            return None
        raw = json.loads(Path(self.credentials_path).read_text())
        return str(raw["username"]), str(raw["password"])


@dataclass(frozen=True)
class EnvInfo:
    run_id: str
    run_dir: str
    kubeconfig: str
    apiserver_url: str
    registry: RegistryInfo
    nodes: list[str]
    pids: dict[str, int]
    ports: dict[str, dict[str, int]]
    versions: dict[str, str]
    logs_dir: str
    state_file: str
    kubeconfigs: dict[str, str] = field(default_factory=dict)
    kyverno_namespace: str = "kyverno"
    node_kind: str = "kwok"
    """kwok (fake nodes) or real (containerd and kubelet in the run's namespaces)."""
    kyverno: str = "process"
    """process (Kyverno's controllers run by the environment) or helm (left to a Helm
    install: its images are in the registry, its values in `kyverno_values`)."""
    kyverno_values: str | None = None
    exception_namespace: str | None = None
    """The one namespace whose PolicyExceptions Kyverno accepts (its flags or chart values)."""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["registry"]["url"] = self.registry.url
        return data

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> EnvInfo:
        reg = {k: v for k, v in raw["registry"].items() if k != "url"}
        return cls(**{**raw, "registry": RegistryInfo(**reg)})

"""What a local environment is made of, in one place: where its run lives, the registry's
shape, its nodes, and the timeouts (the one `signcheck.timeouts.Timeouts` the suite uses too).

Not a second settings object: the suite's settings (`signcheck.settings.config.Settings`)
are resolved once from the command line, environment and profile; the local provider turns
them into an `EnvSpec`, as `signcheck env up` does from its own flags."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from signcheck import places
from signcheck.errors import ConfigError
from signcheck.timeouts import Timeouts


@dataclass(frozen=True)
class EnvSpec:
    timeouts: Timeouts = field(default_factory=Timeouts.from_env)
    runs_root: Path = field(default_factory=places.env_runs)
    keep: bool = False
    registry_auth: bool = False
    registry_tls: bool = False
    nodes: int = 2
    node_kind: Literal["kwok", "real"] = "kwok"
    """kwok: fake nodes (the fast loop); real: containerd, kubelet and kube-proxy in the
    run's own namespaces (`signcheck.localenv.realnode`)."""
    kyverno: Literal["process", "helm"] = "process"
    """process: Kyverno's controllers run as processes of the environment (out of cluster);
    helm: the environment mirrors Kyverno's images into its registry and writes the chart
    values (`signcheck.localenv.incluster`), and Kyverno is installed in the cluster by Helm
    (by the suite, or by the user with `--kyverno-mode install`). Real nodes only."""
    reports_controller: bool = True
    #: Start etcd from a cached copy that already holds Kyverno's CRDs (see `seed`).
    seed_etcd: bool = True
    run_id: str | None = None

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ConfigError(f"nodes must be at least 1, got {self.nodes}")
        if self.kyverno == "helm" and self.node_kind != "real":
            raise ConfigError(
                "Kyverno installed in the cluster needs a node that runs its pods: use "
                "--nodes real (kwok's nodes run nothing)"
            )

    def with_(self, **changes: object) -> EnvSpec:
        return replace(self, **changes)  # type: ignore[arg-type]

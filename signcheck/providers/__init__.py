"""Where the suite runs: one provider per target kind brings a `Target` up and down.

`local` boots the embedded environment (`providers.local`); `cluster` checks an existing
cluster and registry (`providers.preflight`) and installs Kyverno when asked
(`providers.cluster`); `yandex` is `cluster` plus the seed's infrastructure
(`providers.yandex`, `providers.terraform`) and its registry conventions. The target name
is read here and in `signcheck.target`, nowhere else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from signcheck.settings.config import Settings
from signcheck.target import Registry, Target


def tools_before_boot(settings: Settings) -> list[str]:
    """Pinned tools to build (when missing) before the target boots: the local target's
    registry and cosign, and a real node's containerd, kubelet, kube-proxy and Helm. Cluster
    targets check, and build, theirs in the preflight."""
    if settings.kind.own_cluster:
        node: list[str] = []
        if settings.nodes == "real":
            # The node's daemons, and what installs Kyverno in its cluster (Helm, and the
            # init container's binary, the one Kyverno image not needed out of cluster).
            node = ["containerd", "containerd-shim-runc-v2", "kubelet", "kube-proxy"]
            node += ["helm", "kyvernopre"]
        return ["registry", settings.cosign_tool, *node]
    return []


def provider(
    settings: Settings,
    run_id: str,
    run_dir: Path,
    on_registry: Callable[[Registry], None] | None = None,
) -> contextlib.AbstractContextManager[Target]:
    """The target's context: booted (or checked) on entry, removed on exit. `on_registry`
    is called during a local boot as soon as the run's registry answers."""
    if settings.kind.own_cluster:
        from signcheck.providers.local import local

        return local(settings, run_id, run_dir, on_registry)
    # yandex is the cluster target plus the seed's infrastructure (--provision) and its
    # registry and KMS conventions, all resolved from the settings.
    from signcheck.providers.cluster import cluster

    return cluster(settings, run_id, run_dir)

"""What the builders of a run's session resources (the scenarios, SEED-08's miniature run)
need of the run: its names and clients.

A Protocol, so they take the run without importing `signcheck.run.resources`, which calls them: the
run module depends on them, never the other way round.
"""

from __future__ import annotations

from typing import Any, Protocol

from signcheck.clients.k8s import Cluster
from signcheck.clients.oci import OciClient
from signcheck.run.phases import Phases
from signcheck.settings.config import Settings
from signcheck.target import Target


class RunContext(Protocol):
    target: Target
    settings: Settings
    phases: Phases
    registry: OciClient

    @property
    def cluster(self) -> Cluster: ...

    @property
    def policy_name(self) -> str: ...

    def repository(self, role: str) -> str: ...

    def namespace_name(self, slug: str) -> str: ...

    def render_policy(self, public_keys: tuple[str, ...], **overrides: Any) -> dict[str, Any]: ...

    def for_run(self, run_id: str) -> RunContext:
        """The same target (registry, cluster, run directory) under another run id."""
        ...

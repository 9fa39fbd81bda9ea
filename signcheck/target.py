"""What the suite runs against: the small interface every target (local, cluster, yandex)
fills, and nothing else. Fixtures and the library only ever see a `Target`.

A `Target` is plain data so it can be written to the run directory as JSON and read back by
other pytest-xdist workers: session resources are created once per run, not once per worker.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from signcheck import redact

Scheme = Literal["http", "https"]
TargetName = Literal["local", "cluster", "yandex"]
TARGETS: tuple[TargetName, ...] = ("local", "cluster", "yandex")


@dataclass(frozen=True)
class TargetKind:
    """What choosing a target means, as behaviour flags: the one place that reads a target's
    name (with `signcheck.providers`, which brings each kind up)."""

    name: TargetName
    own_cluster: bool
    """The run boots its own cluster and registry (nothing to point it at)."""
    can_provision: bool = False
    """`--provision` makes the infrastructure for the run (the seed's Terraform)."""
    token_env: str | None = None
    """Where the registry token comes from when SIGNCHECK_REGISTRY_PASSWORD is unset."""
    token_user: str | None = None
    """The registry user that goes with that token."""


KINDS: dict[str, TargetKind] = {
    "local": TargetKind("local", own_cluster=True),
    "cluster": TargetKind("cluster", own_cluster=False),
    # The seed logs in to Container Registry as `iam` with an IAM token.
    "yandex": TargetKind(
        "yandex", own_cluster=False, can_provision=True, token_env="YC_IAM_TOKEN", token_user="iam"
    ),
}


def _kind_of(name: str) -> TargetKind:
    return KINDS.get(name) or KINDS["cluster"]


RUN_LABEL = "signcheck.io/run"
"""Label (and annotation prefix) carried by everything a run creates in a cluster."""

OUTSIDE_LABEL = "signcheck.io/outside-of"
"""On the namespaces a run creates to stand *outside* its scope (no RUN_LABEL, so no policy
of the run matches them): lets teardown find them all the same."""


def new_run_id() -> str:
    """Sortable, readable and unique: a valid label value, tag and path component. The one
    format for suite runs and for environments started by `signcheck env up`."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


@dataclass(frozen=True)
class Registry:
    """An OCI registry endpoint as seen from this machine *and* from Kyverno."""

    host: str
    """host:port, as it appears in image references."""
    scheme: Scheme = "https"
    ca_file: Path | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    repository_prefix: str = "signcheck"
    """Path under the host where runs push (`<host>/<prefix>/<run id>/<image>`)."""

    def __post_init__(self) -> None:
        # The one place a registry password enters the process, whoever built the Registry
        # (a provider, a worker reading target.json, signcheck cleanup): from here on no
        # report, log or terminal line can carry it.
        redact.register(self.password)

    @property
    def insecure(self) -> bool:
        return self.scheme == "http"

    @property
    def has_auth(self) -> bool:
        return bool(self.username and self.password)

    def repository(self, run_id: str, name: str) -> str:
        return f"{self.host}/{self.repository_prefix}/{run_id}/{name}"

    def run_glob(self, run_id: str) -> str:
        """The `imageReferences` pattern that covers every image of one run."""
        return f"{self.host}/{self.repository_prefix}/{run_id}/*"


@dataclass(frozen=True)
class Target:
    """Everything a conformance run needs to know about where it runs."""

    name: str
    """local, cluster or yandex."""
    run_id: str
    run_dir: Path
    kubeconfig: Path
    registry: Registry
    context: str | None = None
    kyverno_namespace: str = "kyverno"
    versions: dict[str, str] = field(default_factory=dict)
    """Component versions as reported by the components (kubernetes, kyverno, registry...)."""
    kyverno_log: Path | None = None
    """A log file to tail for evidence (local target); None where logs come from pods."""
    pods_run: bool = True
    """Whether admitted pods can reach Running (kwok fakes it locally; real clusters need a
    runnable image)."""
    containers_run: bool = False
    """Admitted pods' containers really start (a real node): the test images carry a program
    to run, and Running means a container, not a status set by kwok."""
    disposable: bool = False
    """The cluster and registry are the run's own and stop with it (the local target): nothing
    in them outlives the run, so they are not cleaned object by object, and no other run
    shares them. A behaviour flag, so code asks what a target does, not what it is called."""
    extra: dict[str, Any] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        """What runs the tests, for the summary: the nodes and where Kyverno runs."""
        if not self.disposable:
            nodes = "the cluster's own"
        else:
            nodes = "real (containerd + kubelet)" if self.containers_run else "kwok (fake)"
        release = (self.extra or {}).get("kyverno_release")
        if not release:
            kyverno = "out of cluster, processes of the run" if self.disposable else "existing"
            return {"nodes": nodes, "kyverno": kyverno}
        chart = str(release.get("chart_version") or release.get("chart"))
        namespace = release.get("namespace", self.kyverno_namespace)
        return {
            "nodes": nodes,
            "kyverno": f"in cluster, Helm release {release['name']} ({chart})",
            "kyverno_release": f"{namespace}/{release['name']}",
            "kyverno_chart": chart,
            "kyverno_app_version": str(release.get("app_version") or ""),
        }

    def to_json(self) -> str:
        data = asdict(self)
        # Credentials stay in memory: another worker re-reads them from the environment
        # provider, never from a file on disk.
        data["registry"]["password"] = None
        return json.dumps(data, default=str, indent=2)

    @classmethod
    def from_json(cls, text: str, password: str | None = None) -> Target:
        data = json.loads(text)
        reg = data.pop("registry")
        registry = Registry(
            host=reg["host"],
            scheme=reg["scheme"],
            ca_file=Path(reg["ca_file"]) if reg.get("ca_file") else None,
            username=reg.get("username"),
            password=password,
            repository_prefix=reg.get("repository_prefix", "signcheck"),
        )
        return cls(
            name=data["name"],
            run_id=data["run_id"],
            run_dir=Path(data["run_dir"]),
            kubeconfig=Path(data["kubeconfig"]),
            registry=registry,
            context=data.get("context"),
            kyverno_namespace=data.get("kyverno_namespace", "kyverno"),
            versions=dict(data.get("versions", {})),
            kyverno_log=Path(data["kyverno_log"]) if data.get("kyverno_log") else None,
            pods_run=bool(data.get("pods_run", True)),
            containers_run=bool(data.get("containers_run", False)),
            # Records written before the flag existed: only the local target was disposable.
            disposable=bool(data.get("disposable", _kind_of(data["name"]).own_cluster)),
            extra=dict(data.get("extra", {})),
        )

"""The local target: the embedded environment (`signcheck.localenv`) booted for the run,
adapted to a `Target` whose cluster and registry are the run's own."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from signcheck.errors import ConfigError
from signcheck.settings.config import Settings
from signcheck.target import Registry, Target


def from_env_info(info: Any, run_dir: Path) -> Target:
    """A `Target` from the local environment's `EnvInfo` (duck-typed: only the documented
    fields are read)."""
    reg = info.registry
    creds = reg.credentials() if getattr(reg, "auth", False) else None
    username, password = creds if creds else (None, None)
    logs = Path(info.logs_dir) if getattr(info, "logs_dir", None) else None
    # Kyverno installed in the cluster logs through its pods, as on any cluster.
    in_cluster = getattr(info, "kyverno", "process") == "helm"
    kyverno_log = logs / "kyverno.log" if logs and not in_cluster else None
    return Target(
        name="local",
        run_id=info.run_id,
        run_dir=run_dir,
        kubeconfig=Path(info.kubeconfig),
        registry=Registry(
            host=reg.host,
            scheme="https" if reg.scheme == "https" else "http",
            ca_file=Path(reg.ca_path) if reg.ca_path else None,
            username=username,
            password=password,
        ),
        kyverno_namespace=getattr(info, "kyverno_namespace", "kyverno"),
        versions=_with_kubernetes(dict(getattr(info, "versions", {}) or {})),
        kyverno_log=kyverno_log,
        pods_run=True,
        containers_run=getattr(info, "node_kind", "kwok") == "real",
        disposable=True,
        extra={
            "env_run_dir": str(info.run_dir),
            "logs_dir": str(logs) if logs else None,
            "pull_secret": getattr(reg, "pull_secret", None),
            "exception_namespace": getattr(info, "exception_namespace", None),
        },
    )


def _with_kubernetes(versions: dict[str, str]) -> dict[str, str]:
    # The environment reports per binary; the summary names "kubernetes" like any cluster.
    if "kubernetes" not in versions and "kube-apiserver" in versions:
        versions = {"kubernetes": versions["kube-apiserver"], **versions}
    return versions


@contextlib.contextmanager
def local(
    settings: Settings,
    run_id: str,
    run_dir: Path,
    on_registry: Callable[[Registry], None] | None = None,
) -> Iterator[Target]:
    """The embedded environment, booted with this run's id (so its processes, logs and
    leftovers carry the same id as everything the suite creates).

    On a real node Kyverno is installed in the cluster by the seed's `helm install`, through
    the cluster target's own path (preflight, install, readiness, uninstall): the
    environment brings the cluster, the registry and Kyverno's images, nothing more."""
    try:
        from signcheck.localenv import EnvSpec, LocalEnv
    except ImportError as err:
        raise ConfigError(
            "the local target is not available in this checkout (signcheck.localenv is "
            "missing); run with --target cluster"
        ) from err
    real = settings.nodes == "real"
    # The registry requires credentials, like the seed's Container Registry: Kyverno reads
    # them from its image pull secret (the seed's `imagePullSecrets.regcred`).
    spec = EnvSpec(
        run_id=run_id,
        keep=settings.keep,
        registry_auth=True,
        # On a real node also TLS with a CA of its own (an IP SAN), as the seed's registry
        # has: nodes and Kyverno's pods must trust it, not skip verification.
        registry_tls=real,
        node_kind=settings.nodes,
        kyverno="helm" if real else "process",
    )
    booting = LocalEnv(spec)
    booting.on_registry = on_registry
    with booting as env:
        target = from_env_info(env.info, run_dir)
        if not real:
            yield target
            return
        with kyverno_in_cluster(settings, target, env.info.kyverno_values) as installed:
            yield installed


@contextlib.contextmanager
def kyverno_in_cluster(
    settings: Settings, target: Target, values_file: str | None
) -> Iterator[Target]:
    """Kyverno installed in a real-node environment's cluster by the seed's `helm install`
    (with the environment's values file), removed on the way out; `target` gains what the
    install and its preflight learnt."""
    import yaml

    from signcheck.localenv import incluster
    from signcheck.providers.cluster import checked

    values = yaml.safe_load(Path(values_file).read_text()) if values_file else None
    install = replace(settings, kyverno_mode="install")
    with checked(
        install,
        target.kubeconfig,
        target.registry,
        target.run_id,
        target.run_dir,
        kyverno_values=values,
        prepare_kyverno=incluster.premade_certificates,
    ) as installed:
        yield replace(
            target,
            versions={**target.versions, **installed.versions},
            extra={**target.extra, **installed.extra},
        )

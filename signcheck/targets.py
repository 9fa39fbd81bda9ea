"""Where the suite runs: one context manager per target, each yielding a `Target`.

`local` adapts the embedded environment (`signcheck.localenv`); `cluster` describes an
existing cluster and registry from the settings; `yandex` is `cluster` plus provisioning and
is not wired yet.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from signcheck import redact
from signcheck.config import Settings
from signcheck.errors import ConfigError
from signcheck.k8s import Cluster
from signcheck.target import Registry, Target


def from_env_info(info: Any, run_dir: Path) -> Target:
    """A `Target` from the local environment's `EnvInfo` (duck-typed: only the documented
    fields are read)."""
    reg = info.registry
    creds = reg.credentials() if getattr(reg, "auth", False) else None
    username, password = creds if creds else (None, None)
    redact.register(password)
    logs = Path(info.logs_dir) if getattr(info, "logs_dir", None) else None
    kyverno_log = logs / "kyverno.log" if logs else None
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
        extra={
            "env_run_dir": str(info.run_dir),
            "logs_dir": str(logs) if logs else None,
            "pull_secret": getattr(reg, "pull_secret", None),
        },
    )


def _with_kubernetes(versions: dict[str, str]) -> dict[str, str]:
    # The environment reports per binary; the summary names "kubernetes" like any cluster.
    if "kubernetes" not in versions and "kube-apiserver" in versions:
        versions = {"kubernetes": versions["kube-apiserver"], **versions}
    return versions


@contextlib.contextmanager
def local(settings: Settings, run_id: str, run_dir: Path) -> Iterator[Target]:
    """The embedded environment, booted with this run's id (so its processes, logs and
    leftovers carry the same id as everything the suite creates)."""
    try:
        from signcheck.localenv import LocalEnv
        from signcheck.localenv import Settings as EnvSettings
    except ImportError as err:
        raise ConfigError(
            "the local target is not available in this checkout (signcheck.localenv is "
            "missing); run with --target cluster"
        ) from err
    with LocalEnv(EnvSettings(run_id=run_id, keep=settings.keep)) as env:
        yield from_env_info(env.info, run_dir)


@contextlib.contextmanager
def cluster(settings: Settings, run_id: str, run_dir: Path) -> Iterator[Target]:
    kubeconfig = settings.resolved_kubeconfig()
    assert settings.registry, "validated by Settings.validate"
    probe = Cluster(kubeconfig, settings.context)
    versions = {"kubernetes": probe.ping()}
    if kyverno := _kyverno_version(probe, settings.kyverno_namespace):
        versions["kyverno"] = kyverno
    yield Target(
        name=settings.target,
        run_id=run_id,
        run_dir=run_dir,
        kubeconfig=kubeconfig,
        context=settings.context,
        registry=Registry(
            host=settings.registry,
            scheme=settings.registry_scheme,
            ca_file=settings.registry_ca,
            username=settings.registry_username,
            password=settings.registry_password,
            repository_prefix=settings.registry_prefix,
        ),
        kyverno_namespace=settings.kyverno_namespace,
        versions=versions,
        # The suite's images are not runnable programs; on a real cluster admission is
        # the verdict, Running is not checked.
        pods_run=False,
    )


def _kyverno_version(c: Cluster, namespace: str) -> str | None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        deps = client.AppsV1Api(c.api).list_namespaced_deployment(namespace).items
    except ApiException:
        return None
    for d in deps:
        pod_spec = d.spec.template.spec if d.spec else None
        for ctr in pod_spec.containers if pod_spec else []:
            image = str(ctr.image or "")
            if "kyverno" in image and ":" in image.rsplit("/", 1)[-1]:
                return image.rsplit(":", 1)[-1]
    return None


def provider(
    settings: Settings, run_id: str, run_dir: Path
) -> contextlib.AbstractContextManager[Target]:
    if settings.target == "local":
        return local(settings, run_id, run_dir)
    if settings.target == "cluster":
        return cluster(settings, run_id, run_dir)
    raise ConfigError(
        "--target yandex is not wired into the suite yet: provision with `signcheck infra` "
        "and run with --target cluster"
    )

"""Where the suite runs: one context manager per target, each yielding a `Target`.

`local` adapts the embedded environment (`signcheck.localenv`); `cluster` checks an existing
cluster and registry (`signcheck.preflight`) and installs Kyverno when asked; `yandex` is
`cluster` plus the seed's infrastructure (`signcheck.yandex`) and its registry conventions.
"""

from __future__ import annotations

import contextlib
import json
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
        disposable=True,
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
    # The registry requires credentials, like the seed's Container Registry: Kyverno reads
    # them from its image pull secret (the seed's `imagePullSecrets.regcred`).
    with LocalEnv(EnvSettings(run_id=run_id, keep=settings.keep, registry_auth=True)) as env:
        yield from_env_info(env.info, run_dir)


@contextlib.contextmanager
def cluster(settings: Settings, run_id: str, run_dir: Path) -> Iterator[Target]:
    """An existing cluster (or, on `yandex --provision`, one made for the run), checked by
    the preflight before anything is changed; Kyverno and Policy Reporter installed for
    the run and removed after it when asked to."""
    from signcheck import install, preflight

    with contextlib.ExitStack() as stack:
        kubeconfig = settings.resolved_kubeconfig()
        registry_spec = (settings.registry_host, settings.registry_repository_prefix)
        extra: dict[str, Any] = {}
        if settings.target == "yandex" and settings.provision:
            from signcheck import yandex

            stand = stack.enter_context(yandex.provisioned(settings, run_id, run_dir))
            kubeconfig = stand.kubeconfig
            registry_spec = (stand.registry_host, stand.repository_prefix(settings))
            settings = stand.with_settings(settings)
            extra["infra"] = stand.summary()
        registry = Registry(
            host=registry_spec[0],
            scheme=settings.effective_registry_scheme,
            ca_file=settings.registry_ca,
            username=settings.effective_registry_username,
            password=settings.registry_password,
            repository_prefix=registry_spec[1],
        )
        redact.register(registry.password)
        pf = preflight.Preflight(settings, kubeconfig, settings.context, registry, run_dir)
        try:
            pf.before_install()
            versions = {"kubernetes": pf.cluster.ping()}
            if settings.kyverno_mode == "install":
                release = stack.enter_context(
                    install.kyverno_release(settings, pf.cluster, registry, run_id)
                )
                extra["kyverno_release"] = {"name": release.name, "chart": release.chart}
            pf.kyverno_ready(
                settings.kyverno_namespace,
                settings.timeouts.kyverno_ready,
                installed=settings.kyverno_mode == "install",
            )
            pf.policy_accepted(_dry_run_policy(settings, registry, run_id, run_dir))
            if settings.policy_reporter:
                stack.enter_context(install.policy_reporter_release(settings, pf.cluster, run_id))
        finally:
            extra["preflight"] = pf.summary()
            (run_dir / "preflight.json").write_text(json.dumps(pf.summary(), indent=2))
        if kyverno := _kyverno_version(pf.cluster, settings.kyverno_namespace):
            versions["kyverno"] = kyverno
        yield Target(
            name=settings.target,
            run_id=run_id,
            run_dir=run_dir,
            kubeconfig=kubeconfig,
            context=settings.context,
            registry=registry,
            kyverno_namespace=settings.kyverno_namespace,
            versions=versions,
            # The suite's images are not runnable programs; on a real cluster admission is
            # the verdict, Running is not checked.
            pods_run=False,
            extra=extra,
        )


def _dry_run_policy(
    settings: Settings, registry: Registry, run_id: str, run_dir: Path
) -> dict[str, Any]:
    """The policy the run will apply, with the configured public key when there is one
    (a throwaway key otherwise: the key itself does not change what the cluster accepts)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from signcheck import kyverno

    pub = run_dir / "keys-preflight" / "main.pub"
    if pub.is_file():
        pem = pub.read_text()
    else:
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        pem = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
    name = "check-image" if settings.seed_exact_policy else f"check-image-{run_id}"
    spec = kyverno.PolicySpec(
        run_id=run_id,
        image_references=(registry.run_glob(run_id),),
        public_keys=(pem,),
        name=name,
        seed_exact=settings.seed_exact_policy,
    )
    return kyverno.render_cluster_policy(spec)


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


def tools_before_boot(settings: Settings) -> list[str]:
    """Pinned tools to build (when missing) before the target boots: the local target's
    registry and cosign. Cluster targets check, and build, theirs in the preflight."""
    if settings.target == "local":
        return ["registry", settings.cosign_tool]
    return []


def provider(
    settings: Settings, run_id: str, run_dir: Path
) -> contextlib.AbstractContextManager[Target]:
    if settings.target == "local":
        return local(settings, run_id, run_dir)
    # yandex is the cluster target plus the seed's infrastructure (--provision) and its
    # registry and KMS conventions, all resolved from the settings.
    return cluster(settings, run_id, run_dir)

"""The cluster targets (`cluster`, and `yandex`, which adds the seed's infrastructure): an
existing cluster and registry checked by the preflight before anything changes, Kyverno
and Policy Reporter installed for the run when asked."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from signcheck.clients.k8s import Cluster
from signcheck.settings.config import Settings
from signcheck.target import Registry, Target


@contextlib.contextmanager
def cluster(settings: Settings, run_id: str, run_dir: Path) -> Iterator[Target]:
    """An existing cluster (or, on `yandex --provision`, one made for the run), checked by
    the preflight before anything is changed; Kyverno and Policy Reporter installed for
    the run and removed after it when asked to."""
    with contextlib.ExitStack() as stack:
        kubeconfig = settings.resolved_kubeconfig()
        registry_spec = (settings.registry_host, settings.registry_repository_prefix)
        extra: dict[str, Any] = {}
        if settings.kind.can_provision and settings.provision:
            from signcheck.providers import yandex

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
        yield stack.enter_context(
            checked(settings, kubeconfig, registry, run_id, run_dir, extra=extra)
        )


@contextlib.contextmanager
def checked(
    settings: Settings,
    kubeconfig: Path,
    registry: Registry,
    run_id: str,
    run_dir: Path,
    *,
    extra: dict[str, Any] | None = None,
    kyverno_values: dict[str, Any] | None = None,
    prepare_kyverno: Callable[[Cluster, str], None] | None = None,
) -> Iterator[Target]:
    """A cluster and registry through the preflight, with Kyverno (and Policy Reporter)
    installed when the settings ask; `kyverno_values` are the environment's chart values
    (the local target's real node: its image mirror), under the user's `--kyverno-values`,
    and `prepare_kyverno` what the environment puts in Kyverno's namespace first."""
    from signcheck.kyverno import install
    from signcheck.providers import preflight

    extra = dict(extra or {})
    with contextlib.ExitStack() as stack:
        pf = preflight.Preflight(settings, kubeconfig, settings.context, registry, run_dir)
        try:
            pf.before_install()
            versions = {"kubernetes": pf.cluster.ping()}
            if settings.kyverno_mode == "install":
                release = stack.enter_context(
                    install.kyverno_release(
                        settings,
                        pf.cluster,
                        registry,
                        run_id,
                        environment=kyverno_values,
                        prepare=prepare_kyverno,
                    )
                )
                extra["kyverno_release"] = release.summary()
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

    from signcheck.kyverno import cpol

    pub = run_dir / "keys-preflight" / "main.pub"
    if pub.is_file():
        pem = pub.read_text()
    else:
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        pem = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
    name = "check-image" if settings.seed_exact_policy else f"check-image-{run_id}"
    spec = cpol.PolicySpec(
        run_id=run_id,
        image_references=(registry.run_glob(run_id),),
        public_keys=(pem,),
        name=name,
        seed_exact=settings.seed_exact_policy,
    )
    return cpol.render_cluster_policy(spec)


def _kyverno_version(c: Cluster, namespace: str) -> str | None:
    for d in c.deployments(namespace):
        pod_spec = ((d.get("spec") or {}).get("template") or {}).get("spec") or {}
        for ctr in pod_spec.get("containers") or []:
            image = str(ctr.get("image") or "")
            if "kyverno" in image and ":" in image.rsplit("/", 1)[-1]:
                return image.rsplit(":", 1)[-1]
    return None

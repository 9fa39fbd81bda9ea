"""`signcheck incluster`: the suite run as a Kubernetes Job inside the cluster it judges.

The suite image (a Debian root file system by mmdebstrap, the suite's Python packages, the
pinned cosign and the tests; `signcheck.incluster.image`) is pushed to the cluster's registry
and signed, then run as a Job in a namespace of its own, with a ServiceAccount bound to just
what the run does. Its JUnit, summary and report come back into
`<reports>/incluster/<run id>/`; the namespace and the cluster role are removed afterwards.
The same image is a Sonobuoy plugin (`signcheck-plugin.yaml`). Documented in docs/incluster.md.

    signcheck incluster --profile <profile.toml> [--host-network] -- -k SEED
    signcheck incluster image        # build the image only (cached layers), print its size
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from signcheck import redact
from signcheck.errors import ConfigError

PROG = "signcheck incluster"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "incluster",
        help="run the suite as a Job inside the cluster (and build its image)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--profile", type=Path, default=None, help="the cluster's TOML profile")
    p.add_argument("--kubeconfig", type=Path, default=None, help="default $KUBECONFIG")
    p.add_argument("--context", default=None, help="kubeconfig context (default: current)")
    p.add_argument(
        "--reports", type=Path, default=Path("reports"), help="where incluster/<run id>/ goes"
    )
    p.add_argument(
        "--host-network",
        action="store_true",
        help="run the pod in the node's network namespace: for a registry (or Kyverno) the "
        "node reaches on its own loopback, as in `signcheck env up --nodes real`",
    )
    p.add_argument(
        "--timeout", type=int, default=1800, help="seconds the Job may run (default 1800)"
    )
    p.add_argument(
        "--image-only",
        action="store_true",
        help="build the suite image's layers (cached) and print them; touch no cluster",
    )
    p.add_argument(
        "--push-only",
        action="store_true",
        help="build, push and sign the suite image, print its reference; run no Job",
    )
    p.add_argument(
        "--plugin-out",
        type=Path,
        default=None,
        help="with --push-only: write the Sonobuoy plugin definition for that image here",
    )
    p.add_argument(
        "pytest_args",
        nargs=argparse.REMAINDER,
        metavar="-- PYTEST_ARGS",
        help="after `--`: arguments for the run inside the cluster (e.g. -- -k SEED)",
    )
    p.set_defaults(func=cmd_incluster)


def _checkout() -> Path:
    here = Path.cwd()
    if not (here / "tests").is_dir() or not (here / "signcheck").is_dir():
        raise ConfigError(
            f"run {PROG} from the signcheck checkout (the image carries its tests/): "
            f"{here} has no tests/"
        )
    return here


def cmd_incluster(args: argparse.Namespace) -> int:
    from signcheck.incluster import image

    checkout = _checkout()

    def progress(line: str) -> None:
        print(f"{PROG}: {redact.redact(line)}", flush=True)

    if args.image_only:
        built = image.build(checkout, progress)
        for layer in built.layers:
            size = layer.gz.stat().st_size / 1e6
            progress(f"layer {layer.gz.name}: {size:.1f} MB ({layer.diff_id[:19]})")
        return 0
    return _run(args, checkout, progress)


def _run(args: argparse.Namespace, checkout: Path, progress: Callable[[str], None]) -> int:
    from signcheck.clients.k8s import Cluster
    from signcheck.incluster import job, run
    from signcheck.settings.config import Settings
    from signcheck.target import Registry, new_run_id

    # Without a profile, the cluster target; a profile says its own target (yandex...).
    cli = {
        "profile": args.profile,
        "kubeconfig": args.kubeconfig,
        "context": args.context,
        "target": None if args.profile else "cluster",
    }
    settings = Settings.from_sources(cli)
    if settings.kind.own_cluster:
        raise ConfigError(
            f"{PROG} runs inside an existing cluster: the profile's target is "
            f"{settings.target!r}; use a cluster profile (`signcheck env up` writes one)"
        )
    if not settings.registry:
        raise ConfigError(
            f"{PROG} needs the cluster's registry: --registry in the profile, or "
            "SIGNCHECK_REGISTRY_URL (the image is pushed there and the suite inside uses it)"
        )
    redact.register_env()
    registry = Registry(
        host=settings.registry_host,
        scheme=settings.effective_registry_scheme,
        ca_file=settings.registry_ca,
        username=settings.effective_registry_username,
        password=settings.registry_password,
        repository_prefix=settings.registry_repository_prefix,
    )
    cluster = Cluster(settings.resolved_kubeconfig(), settings.context)
    progress(f"cluster {cluster.ping()} at {cluster.api.configuration.host}")
    run_id = new_run_id()
    pytest_args = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args
    with run.workdir() as tmp:
        reference = run.push_and_sign(
            registry, checkout, run_id, Path(tmp), settings.signing_key, progress
        )
    if args.push_only:
        progress(f"suite image: {reference}")
        if args.plugin_out:
            args.plugin_out.write_text(job.sonobuoy_plugin(reference, registry, tuple(pytest_args)))
            progress(f"Sonobuoy plugin: {args.plugin_out}")
        return 0
    settings_env = {"SIGNCHECK_KYVERNO_NAMESPACE": settings.kyverno_namespace}
    spec = job.JobSpec(
        run_id=run_id,
        namespace=f"sc-{run_id[-6:]}-incluster",
        image=reference,
        registry=registry,
        pytest_args=tuple(pytest_args),
        host_network=args.host_network,
        deadline_seconds=args.timeout,
        settings_env=settings_env,
    )
    try:
        outcome = run.run_job(cluster, spec, args.reports, progress)
    finally:
        run.remove_image(registry, reference, progress)
    progress(f"results: {outcome.reports_dir}")
    sentence = run.summary_sentence(outcome.reports_dir)
    if outcome.problem or sentence is None:
        progress(f"no verdict: {outcome.problem or 'the results hold no summary.json'}")
        return 6
    progress(f"verdict inside the cluster: {sentence} (exit {outcome.exit_code})")
    return outcome.exit_code if outcome.exit_code is not None else 6

"""One in-cluster run: the suite image pushed and signed, a Job that runs it, its results
brought back, and everything the run created in the cluster removed, whatever the ending.

The image goes to `<registry>/<prefix>/signcheck-suite:<run id>` and is signed by a key pair
made for this run (or `--signing-key`, the key a cluster-wide policy of the user trusts), so
a cluster that admits only signed images admits the suite too; both are deleted after the
Job. The Job's pod writes its results archive to its log (`signcheck.incluster.entrypoint`);
it is unpacked into `<reports>/incluster/<run id>/` with the pod's log beside it as
`pytest.log`.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from signcheck import redact
from signcheck.clients.k8s import Cluster
from signcheck.clients.oci import OciClient, signature_tag
from signcheck.clients.ociimage import LAYER_TAR_GZIP, MANIFEST_OCI
from signcheck.errors import EnvironmentNotReady, SigncheckError
from signcheck.incluster import entrypoint, image, job
from signcheck.target import Registry
from signcheck.tools.cosign import Cosign, KeyPair

POLL_SECONDS = 2.0
PULL_PATIENCE_SECONDS = 600.0
"""How long the pod may stay Pending (the image is large: a first pull takes a while)."""


@dataclass
class Outcome:
    reports_dir: Path
    exit_code: int | None
    """The suite's exit code inside the pod; None when it never reported one."""
    problem: str | None = None


def push_and_sign(
    registry: Registry,
    checkout: Path,
    run_id: str,
    workdir: Path,
    signing_key: str | None,
    progress: Callable[[str], None],
) -> str:
    """The suite image in `registry`, signed; its reference by digest."""
    built = image.build(checkout, progress)
    oci = OciClient(registry)
    repository = f"{registry.host}/{registry.repository_prefix}/{image.REPOSITORY}"
    progress(f"pushing the suite image to {repository}:{run_id}")
    for layer in built.layers:
        oci.push_blob(repository, LAYER_TAR_GZIP, layer.gz.read_bytes())
    oci.push_blob(repository, built.config.media_type, built.config.data)
    digest = oci.put_manifest(repository, run_id, built.manifest, MANIFEST_OCI)
    reference = f"{repository}@{digest}"
    cosign = Cosign.from_tools(registry, workdir)
    if signing_key:
        # The user's key (password from COSIGN_PASSWORD), e.g. the one their own
        # cluster-wide policy trusts.
        password = os.environ.get("COSIGN_PASSWORD", "")
        key = KeyPair(Path(signing_key), Path(signing_key).with_suffix(".pub"), password)
    else:
        key = cosign.generate_key_pair(workdir / "keys")
    cosign.sign(key, reference)
    progress(f"signed {reference}")
    return reference


def remove_image(registry: Registry, reference: str, progress: Callable[[str], None]) -> None:
    """The suite image and its signature, deleted after the Job (it carries the run id in
    its tag; a later run pushes its own: the layers are cached here, not there)."""
    repository, _, digest = reference.partition("@")
    oci = OciClient(registry)
    try:
        oci.delete(repository, signature_tag(digest))
        oci.delete(repository, digest)
    except SigncheckError as err:
        progress(f"could not delete the suite image {reference}: {err.message}")
        return
    progress(f"deleted the suite image {reference} and its signature")


def run_job(
    cluster: Cluster,
    spec: job.JobSpec,
    reports: Path,
    progress: Callable[[str], None],
) -> Outcome:
    """Create the run's objects, wait for the Job, bring back its results; remove it all."""
    out_dir = reports / "incluster" / spec.run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    objects = job.manifests(spec)
    try:
        for obj in objects:
            created = cluster.create(obj)
            if not created.admitted:
                name = obj["metadata"]["name"]  # type: ignore[index]
                raise EnvironmentNotReady(
                    f"the cluster refused the in-cluster run's {obj['kind']} {name}",
                    str(created),
                )
        progress(f"Job {spec.namespace}/{job.JOB} created; waiting for its pod")
        pod = _wait(cluster, spec, progress)
        log = _log(cluster, spec.namespace, pod)
        return _unpack(log, out_dir)
    finally:
        _remove(cluster, spec, objects, progress)


def _wait(cluster: Cluster, spec: job.JobSpec, progress: Callable[[str], None]) -> str:
    deadline = time.monotonic() + spec.deadline_seconds + 60
    pending_since = time.monotonic()
    said = ""
    while time.monotonic() < deadline:
        pods = cluster.core.list_namespaced_pod(
            spec.namespace, label_selector=f"job-name={job.JOB}"
        )
        for pod in pods.items:
            phase = pod.status.phase or "Pending"
            why = _waiting_reason(pod)
            line = f"pod {pod.metadata.name}: {phase}" + (f" ({why})" if why else "")
            if line != said:
                progress(line)
                said = line
            if phase in ("Succeeded", "Failed"):
                return str(pod.metadata.name)
            if phase == "Pending" and why in (
                "ErrImagePull",
                "ImagePullBackOff",
                "InvalidImageName",
            ):
                raise EnvironmentNotReady(
                    f"the cluster cannot pull the suite image {spec.image} ({why})",
                    "; ".join(cluster.events(spec.namespace))[-2000:],
                )
            if phase != "Pending":
                pending_since = time.monotonic()
            elif time.monotonic() - pending_since > PULL_PATIENCE_SECONDS:
                raise EnvironmentNotReady(
                    f"the suite's pod stayed Pending for {PULL_PATIENCE_SECONDS:.0f} s",
                    "; ".join(cluster.events(spec.namespace))[-2000:],
                )
        if not pods.items and time.monotonic() - pending_since > 60:
            # The Job controller made no pod: admission refused it, quota, a policy.
            raise EnvironmentNotReady(
                f"the Job {spec.namespace}/{job.JOB} made no pod in 60 s",
                "; ".join(cluster.events(spec.namespace))[-2000:],
            )
        time.sleep(POLL_SECONDS)
    raise EnvironmentNotReady(f"the in-cluster run did not end within {spec.deadline_seconds} s")


def _waiting_reason(pod: Any) -> str:
    for status in pod.status.container_statuses or []:
        waiting = status.state.waiting if status.state else None
        if waiting and waiting.reason:
            return str(waiting.reason)
    return ""


def _log(cluster: Cluster, namespace: str, pod: str) -> str:
    text: str = cluster.core.read_namespaced_pod_log(pod, namespace, container=job.CONTAINER)
    return text


def _unpack(log: str, out_dir: Path) -> Outcome:
    head, begin, rest = log.partition(entrypoint.BEGIN)
    encoded, end, tail = rest.partition(entrypoint.END)
    (out_dir / "pytest.log").write_text(redact.redact(head + tail))
    code = None
    for line in tail.splitlines():
        if line.startswith(entrypoint.EXIT_PREFIX):
            code = int(line.removeprefix(entrypoint.EXIT_PREFIX).strip())
    if not (begin and end):
        return Outcome(out_dir, code, "the pod's log holds no results archive (see pytest.log)")
    data = base64.decodebytes(encoded.strip().encode())
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(out_dir, filter="data")
    return Outcome(out_dir, code)


def _remove(
    cluster: Cluster,
    spec: job.JobSpec,
    objects: list[dict[str, Any]],
    progress: Callable[[str], None],
) -> None:
    # Cluster-scoped objects by name; the namespace takes everything in it.
    for obj in reversed(objects):
        if obj["kind"] in ("ClusterRoleBinding", "ClusterRole"):
            with contextlib.suppress(ApiException):
                cluster.delete(obj)
    with contextlib.suppress(ApiException):
        cluster.delete_namespace(spec.namespace, wait=None)
    progress(f"removed namespace {spec.namespace} and ClusterRole(Binding) {spec.role_name}")


def summary_sentence(out_dir: Path) -> str | None:
    try:
        data = json.loads((out_dir / "summary.json").read_text())
        return str(data["verdict"]["sentence"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def workdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="signcheck-incluster-")

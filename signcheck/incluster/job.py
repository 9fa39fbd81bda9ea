"""What `signcheck incluster` puts in a cluster: the objects of one in-cluster run.

A namespace of the run's own (labelled with its run id), a ServiceAccount bound to a
ClusterRole that grants what the run does, exactly the list the preflight checks
(`signcheck.providers.permissions`), the registry's password and CA, and a Job of one pod
running the suite image by digest. Pure: manifests only; `signcheck.incluster.run`
applies them.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

from signcheck.providers.permissions import rules
from signcheck.target import RUN_LABEL, Registry

RESULTS_DIR = "/tmp/sonobuoy/results"
CA_PATH = "/etc/signcheck/registry-ca.pem"
SERVICE_ACCOUNT = "signcheck"
JOB = "signcheck"
CONTAINER = "plugin"


@dataclass(frozen=True)
class JobSpec:
    run_id: str
    namespace: str
    image: str
    """The suite image by digest."""
    registry: Registry
    pytest_args: tuple[str, ...] = ()
    host_network: bool = False
    deadline_seconds: int = 1800
    settings_env: dict[str, str] = field(default_factory=dict)
    """`SIGNCHECK_*` options for the run inside (never a secret: those go in the Secret)."""

    @property
    def role_name(self) -> str:
        return f"signcheck-incluster-{self.run_id}"


def manifests(spec: JobSpec) -> list[dict[str, object]]:
    """Every object, in the order to create them (the namespace first, the Job last)."""
    labels = {RUN_LABEL: spec.run_id, "app.kubernetes.io/name": "signcheck"}
    meta = {"namespace": spec.namespace, "labels": labels}
    out: list[dict[str, object]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": spec.namespace, "labels": labels},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": SERVICE_ACCOUNT, **meta},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": spec.role_name, "labels": labels},
            "rules": rules(),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": spec.role_name, "labels": labels},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": spec.role_name,
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": spec.namespace}
            ],
        },
    ]
    reg = spec.registry
    if reg.password:
        out.append(_secret("signcheck-registry", meta, {"password": reg.password}))
        auth = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
        config = {
            "auths": {reg.host: {"username": reg.username, "password": reg.password, "auth": auth}}
        }
        pull = _secret("signcheck-pull", meta, {".dockerconfigjson": json.dumps(config)})
        pull["type"] = "kubernetes.io/dockerconfigjson"
        out.append(pull)
    if reg.ca_file:
        out.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "signcheck-registry-ca", **meta},
                "data": {"ca.pem": reg.ca_file.read_text()},
            }
        )
    out.append(_job(spec, meta))
    return out


def registry_env(reg: Registry) -> list[dict[str, str]]:
    """The registry as the run inside sees it: the host, and the whole repository prefix
    (a registry given with a path, `cr.yandex/<id>`, keeps its path there)."""
    env = [
        {"name": "SIGNCHECK_REGISTRY_URL", "value": reg.host},
        {"name": "SIGNCHECK_REGISTRY_SCHEME", "value": reg.scheme},
        {"name": "SIGNCHECK_REGISTRY_PREFIX", "value": reg.repository_prefix},
    ]
    if reg.username:
        env.append({"name": "SIGNCHECK_REGISTRY_USERNAME", "value": reg.username})
    return env


def _secret(name: str, meta: dict[str, object], data: dict[str, str]) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, **meta},
        "stringData": data,
    }


def _job(spec: JobSpec, meta: dict[str, object]) -> dict[str, object]:
    reg = spec.registry
    env = [
        {"name": "RESULTS_DIR", "value": RESULTS_DIR},
        {"name": "SIGNCHECK_RESULTS_TO_LOG", "value": "1"},
        *registry_env(reg),
        *({"name": k, "value": v} for k, v in sorted(spec.settings_env.items())),
    ]
    if reg.password:
        ref = {"secretKeyRef": {"name": "signcheck-registry", "key": "password"}}
        env.append({"name": "SIGNCHECK_REGISTRY_PASSWORD", "valueFrom": ref})
    mounts = [{"name": "results", "mountPath": RESULTS_DIR}]
    volumes: list[dict[str, object]] = [{"name": "results", "emptyDir": {}}]
    if reg.ca_file:
        env.append({"name": "SIGNCHECK_REGISTRY_CA", "value": CA_PATH})
        mounts.append({"name": "registry-ca", "mountPath": "/etc/signcheck", "readOnly": True})
        volumes.append(
            {
                "name": "registry-ca",
                "configMap": {
                    "name": "signcheck-registry-ca",
                    "items": [{"key": "ca.pem", "path": "registry-ca.pem"}],
                },
            }
        )
    pod: dict[str, object] = {
        "serviceAccountName": SERVICE_ACCOUNT,
        "restartPolicy": "Never",
        "containers": [
            {
                "name": CONTAINER,
                "image": spec.image,
                "imagePullPolicy": "IfNotPresent",
                "args": list(spec.pytest_args),
                "env": env,
                "volumeMounts": mounts,
            }
        ],
        "volumes": volumes,
    }
    if reg.password:
        pod["imagePullSecrets"] = [{"name": "signcheck-pull"}]
    if spec.host_network:
        # The registry (and Kyverno's webhooks) are on the node's loopback in the local
        # environment: the suite inside must see them by the same address as the node.
        pod["hostNetwork"] = True
        pod["dnsPolicy"] = "ClusterFirstWithHostNet"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": JOB, **meta},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": spec.deadline_seconds,
            "template": {"metadata": {"labels": meta["labels"]}, "spec": pod},
        },
    }


PLUGIN_IMAGE_PLACEHOLDER = "REGISTRY/signcheck/signcheck-suite@sha256:DIGEST"


def sonobuoy_plugin(image: str, registry: Registry, pytest_args: tuple[str, ...] = ()) -> str:
    """The Sonobuoy plugin definition for the suite image (`sonobuoy run --plugin`): a Job
    plugin whose results are JUnit, written by the image's entrypoint to Sonobuoy's results
    directory with the archive's path in `done`. Sonobuoy's own service account runs it; the
    registry password, when the registry needs one, is left for the user to add as a Secret
    reference (never written here)."""
    import yaml

    env = registry_env(registry)
    plugin = {
        "sonobuoy-config": {
            "driver": "Job",
            "plugin-name": "signcheck",
            "result-format": "junit",
            "description": "signcheck: does this cluster admit only images signed with "
            "Cosign, as Kyverno enforces?",
        },
        "spec": {
            "name": CONTAINER,
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "args": list(pytest_args),
            "env": env,
            "volumeMounts": [{"name": "results", "mountPath": RESULTS_DIR}],
        },
    }
    head = (
        "# Sonobuoy plugin for signcheck (sonobuoy run --plugin signcheck-plugin.yaml).\n"
        "# `signcheck incluster --push-only --plugin-out signcheck-plugin.yaml` pushes and signs\n"
        "# the suite image in your registry and writes this file with its digest and registry.\n"
    )
    return head + yaml.safe_dump(plugin, sort_keys=False)

"""Image pull secrets as a workload brings them: a `kubernetes.io/dockerconfigjson` Secret in
the pod's own namespace, holding the registry's credentials (the PULL scenarios)."""

from __future__ import annotations

import base64
import json
from typing import Any

import requests

from signcheck.clients import oci
from signcheck.target import RUN_LABEL, Registry


def docker_config(registry: Registry) -> dict[str, Any]:
    """The `.dockerconfigjson` document with `registry`'s credentials for its host."""
    assert registry.username and registry.password, "the registry has no credentials"
    auth = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    entry = {"username": registry.username, "password": registry.password, "auth": auth}
    return {"auths": {registry.host: entry}}


def secret(name: str, namespace: str, registry: Registry, run_id: str) -> dict[str, Any]:
    """A pull secret for `registry`, labelled with the run (so teardown finds it)."""
    data = json.dumps(docker_config(registry)).encode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": name, "namespace": namespace, "labels": {RUN_LABEL: run_id}},
        "data": {".dockerconfigjson": base64.b64encode(data).decode()},
    }


def pull_status(registry: Registry, config: dict[str, Any], image: oci.PushedImage) -> int:
    """The status a registry answers a manifest GET made with the credentials `config` (a
    `.dockerconfigjson` document) holds for its host: proves a secret would let a puller in."""
    entry = config["auths"][registry.host]
    _, path = oci.split_repository(image.repository)
    resp = requests.get(
        f"{registry.scheme}://{registry.host}/v2/{path}/manifests/{image.tag}",
        headers={"Accept": oci.ACCEPT},
        auth=(entry["username"], entry["password"]),
        timeout=10,
        verify=str(registry.ca_file) if registry.ca_file else True,
    )
    return resp.status_code

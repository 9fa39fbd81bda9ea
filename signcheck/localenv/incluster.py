"""Kyverno for the real node's cluster, installed by Helm as on any other cluster.

The environment does what a platform team does for an offline cluster: it mirrors Kyverno's
images into the registry the nodes pull from (here built FROM scratch from the pinned
binaries, under the chart's own repository names, so `global.image.registry` is the one
switch) and writes the chart values this cluster needs. The Helm install itself is the
suite's `--kyverno-mode install` (the seed's `helm install`), or the user's.

Why each value (none of them changes what Kyverno decides about an image):
- `admissionController.hostNetwork`: image references name the run's registry by a loopback
  address, which means the same registry to pytest and cosign on the host (through the
  forwarders), to containerd on the node, and, in the node's network namespace, to Kyverno.
  From a pod's own network namespace it would mean nothing; any non-loopback name for the
  registry would send the host's traffic off loopback. The webhook still goes through
  Kyverno's Service (ClusterIP, kube-proxy) and the apiserver through `kubernetes`.
- registry client: the registry's CA as Kyverno's CA bundle (or, for a plain-HTTP registry,
  `allowInsecure`); no cloud credential helpers (they would ask cloud metadata endpoints,
  off this machine).
- background and cleanup controllers, the CRD migration and webhook-cleanup hooks off: no
  scenario uses them, and the hooks need images (kyverno-cli, readiness-checker) this
  environment does not build; the run removes Kyverno's webhooks itself on uninstall.
- probes every second instead of every 6-10 s: the time to Ready, nothing else.

`premade_certificates` puts Kyverno's CA and serving pair in its namespace before the
install, as cert-manager would: left to itself Kyverno makes them on one-second retry ticks
after winning its lease, and answers no webhook call until then (~5 s of every boot here).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from signcheck.clients.admission import Admitted
from signcheck.clients.k8s import Cluster
from signcheck.clients.oci import OciClient, PushedImage
from signcheck.errors import EnvironmentNotReady
from signcheck.localenv import nodeimage
from signcheck.localenv.services.kyverno import BACKGROUND_SCAN_INTERVAL, tls_secrets
from signcheck.tools import pins

IMAGES = {
    "kyverno": "kyverno/kyverno",
    "kyvernopre": "kyverno/kyvernopre",
    "reports-controller": "kyverno/reports-controller",
}
"""Pinned binary -> the chart's repository for its image (under `global.image.registry`)."""

TOOLS = tuple(IMAGES)
IMAGE_USER = "65534:65534"
"""The chart runs every container as 65534 with runAsNonRoot; the images say so too."""

VALUES_FILE = "kyverno-values.yaml"


def image_tag() -> str:
    """The chart's default tag (its appVersion) is the pinned Kyverno version."""
    return pins.group("kyverno").version


def push_images(
    client: OciClient, registry_host: str, paths: dict[str, Path]
) -> dict[str, PushedImage]:
    """Kyverno's images into the run's registry, at the chart's repository names."""
    tag = image_tag()

    def push(tool: str) -> tuple[str, PushedImage]:
        repo = f"{registry_host}/{IMAGES[tool]}"
        binary = paths[tool]
        return tool, nodeimage.push_binary_image(
            client, repo, tag, binary, binary.name, user=IMAGE_USER
        )

    with ThreadPoolExecutor(max_workers=len(IMAGES)) as pool:
        return dict(pool.map(push, IMAGES))


def _probe(path: str) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": 9443, "scheme": "HTTPS"},
        "initialDelaySeconds": 0,
        "periodSeconds": 1,
        "timeoutSeconds": 5,
        "failureThreshold": 120,
    }


def chart_values(
    registry_host: str, ca_pem: str | None = None, exception_namespace: str | None = None
) -> dict[str, Any]:
    """The values this environment needs beside the seed's (see the module docstring);
    `ca_pem`: the registry's CA, which Kyverno's controllers then trust (the chart mounts it
    as their only CA bundle: the images are FROM scratch), else the registry is plain HTTP;
    `exception_namespace`: PolicyExceptions on, accepted in that namespace only."""
    insecure = ca_pem is None
    global_values: dict[str, Any] = {"image": {"registry": registry_host}}
    if ca_pem is not None:
        global_values["caCertificates"] = {"data": ca_pem}
    return {
        "global": global_values,
        "crds": {"migration": {"enabled": False}},
        "webhooksCleanup": {"enabled": False},
        "backgroundController": {"enabled": False},
        "cleanupController": {"enabled": False},
        "features": {
            "registryClient": {"allowInsecure": insecure, "credentialHelpers": []},
            **(
                {"policyExceptions": {"enabled": True, "namespace": exception_namespace}}
                if exception_namespace
                else {}
            ),
        },
        "admissionController": {
            "hostNetwork": True,
            "dnsPolicy": "ClusterFirstWithHostNet",
            "startupProbe": _probe("/health/liveness"),
            "readinessProbe": {**_probe("/health/readiness"), "failureThreshold": 6},
        },
        # Its background scans verify images (BG-01), so it must reach the registry as the
        # admission controller does; on the host network its ports must differ from the
        # admission controller's (a hostNetwork pod's container ports are host ports). The
        # scan interval is the out-of-cluster reports controller's.
        "reportsController": {
            "hostNetwork": True,
            "dnsPolicy": "ClusterFirstWithHostNet",
            "server": {"port": 9444},
            "metering": {"port": 8001},
            "featuresOverride": {
                "backgroundScan": {"backgroundScanInterval": BACKGROUND_SCAN_INTERVAL}
            },
        },
    }


def premade_certificates(cluster: Cluster, namespace: str) -> None:
    """Kyverno's TLS Secrets, in the layout its certificate controller keeps (and renews)."""
    for secret in tls_secrets(namespace):
        if cluster.get(secret) is None:
            created = cluster.create(secret)
            if not isinstance(created, Admitted):
                raise EnvironmentNotReady(
                    f"could not create Kyverno's certificate Secret in namespace {namespace}",
                    str(created),
                )


def write_values(path: Path, values: dict[str, Any]) -> Path:
    header = (
        "# Helm values for Kyverno in this signcheck environment (no secrets): its images\n"
        "# are in the environment's registry. Use with --kyverno-values (--target cluster\n"
        "# --kyverno-mode install) or `helm install kyverno <chart> -f <this file>`.\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(values, sort_keys=False))
    return path

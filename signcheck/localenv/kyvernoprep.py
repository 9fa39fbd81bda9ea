"""What Kyverno needs in the cluster and on disk before it starts out of cluster: its
namespace, configuration, TLS secrets, the registry's pull secret, (unless seeded) its
CRDs, and a CA bundle with the registry's CA for its Go TLS client."""

from __future__ import annotations

import base64
import json
import ssl
from pathlib import Path
from typing import Any

from signcheck.localenv import crds as crdlib
from signcheck.localenv import kubeapi as kubelib
from signcheck.localenv.services.kyverno import (
    NAMESPACE,
    PULL_SECRET,
    REPORTS_SA,
    kyverno_configmap,
    tls_secrets,
)
from signcheck.localenv.services.registry import Registry


def prepare_kyverno(
    kube: kubelib.Kube, crds: list[dict[str, Any]] | None, registry: Registry
) -> None:
    """Kyverno's namespace, configuration, pull secret and (unless seeded) CRDs."""
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    kube.apply(kyverno_configmap())
    kube.apply(reports_view_binding())
    for secret in tls_secrets():
        kube.apply(secret)
    if registry.auth:
        payload = json.dumps(registry.dockerconfigjson()).encode()
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": PULL_SECRET, "namespace": NAMESPACE},
                "type": "kubernetes.io/dockerconfigjson",
                "data": {".dockerconfigjson": base64.b64encode(payload).decode()},
            }
        )
    if crds is not None:
        crdlib.apply_crds(kube, crds)


def reports_view_binding() -> dict[str, Any]:
    """What the chart's `kyverno:reports-controller:view` binding grants (its service account
    may read what policies match). An ImageValidatingPolicy with background scanning is Ready
    only when Kyverno finds that permission (BG-01.ivpol). The chart binds `view`, which the
    ClusterRole aggregation controller fills; this environment does not run it, so the
    binding names the role `view` aggregates its core rules from. Named as signcheck's own,
    not the chart's: a `helm install kyverno` into this cluster (the cluster target's install
    mode, tried against a local environment) refuses a same-named object it does not own."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "signcheck:kyverno-reports-controller:view"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "system:aggregate-to-view",
        },
        "subjects": [{"kind": "ServiceAccount", "name": REPORTS_SA, "namespace": NAMESPACE}],
    }


def ca_bundle(extra_ca: Path, out: Path) -> Path:
    """The system's trusted CAs plus one more, for Go programs that read SSL_CERT_FILE."""
    paths = ssl.get_default_verify_paths()
    system = Path(paths.cafile or paths.openssl_cafile or "/etc/ssl/certs/ca-certificates.crt")
    parts = [system.read_text()] if system.is_file() else []
    parts.append(extra_ca.read_text())
    out.write_text("\n".join(parts))
    return out

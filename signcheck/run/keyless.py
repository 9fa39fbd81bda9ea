"""Keyless signing for KEY-*, inside the session setup: a local Fulcio trusting the local
apiserver's service-account issuer signs two images for two service accounts of a namespace
of the run (`signer`, the identity the policies name, and `signer-impostor`, a name that a
regular expression without its end anchor would also accept), and a CA of no policy's signs
a third for the right identity (`signcheck.artefacts.foreign_ca`). Fulcio stops as soon as
the signatures exist: verification needs only its root, which the policies carry.

Only the local target has an issuer this machine can serve Fulcio for; on another target the
record says why the family cannot run, and its tests skip with that reason.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from signcheck import redact
from signcheck.artefacts import foreign_ca
from signcheck.clients import oci
from signcheck.kyverno import attestations
from signcheck.kyverno import keyless as policies
from signcheck.localenv.services.apiserver import SA_ISSUER
from signcheck.localenv.services.fulcio import CLIENT_ID, LocalFulcio, subject
from signcheck.run.context import RunContext
from signcheck.target import RUN_LABEL
from signcheck.tools import pins
from signcheck.tools.cosign import Cosign, KeyPair

SIGNER = "signer"
IMPOSTOR = "signer-impostor"
IMAGES = ("kl-signer", "kl-impostor", "kl-foreign", "kl-attested-impostor")
"""Images KEY-* push: signed (and vuln-attested) by `signer`; signed by `signer-impostor`;
signed by the foreign CA's certificate for `signer`; signed by `signer`, attested by
`signer-impostor`."""

WORK: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    SIGNER: (("kl-signer", "kl-attested-impostor"), ("kl-signer",)),
    IMPOSTOR: (("kl-impostor",), ("kl-attested-impostor",)),
}
"""Service account -> (images it signs, images it attests: a clean vuln scan)."""

OTHER_ISSUER = "https://token.actions.githubusercontent.com"
"""The issuer `keyless-issuer` names: a real CI issuer, not the one that signed."""

VARIANTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "keyless": ("cpol", "keyless: the `signer` identity (subject, issuer), Fulcio's root", {}),
    "keyless-issuer": ("cpol", f"the same subject, issuer `{OTHER_ISSUER}`", {}),
    "keyless-regexp": ("cpol", "the same identity as anchored subjectRegExp/issuerRegExp", {}),
    "ivpol-keyless": ("ivpol", "the `keyless` attestor as an ImageValidatingPolicy", {}),
    "ivpol-keyless-issuer": ("ivpol", "the `keyless-issuer` attestor as an ivpol", {}),
    "ivpol-keyless-regexp": ("ivpol", "the `keyless-regexp` attestor as an ivpol", {}),
    "keyless-attest": ("cpol", "`keyless`, also requiring a vuln attestation by `signer`", {}),
    "ivpol-keyless-attest": ("ivpol", "the `keyless-attest` policy as an ivpol", {}),
}
"""(api, what it is, render overrides): the key attestor is replaced by `finish`."""

DISCOVERY_BINDING = "signcheck-oidc-discovery"


def regexp(text: str) -> str:
    """An anchored regular expression matching exactly `text` (Go's RE2 reads Python's
    escapes: a backslash before any punctuation is that character)."""
    return f"^{re.escape(text)}$"


def identities(record: dict[str, Any]) -> dict[str, policies.Identity]:
    """Each variant's identity, without its API prefix."""
    signer = record["subjects"][SIGNER]
    return {
        "keyless": policies.Identity(subject=signer, issuer=SA_ISSUER),
        "keyless-issuer": policies.Identity(subject=signer, issuer=OTHER_ISSUER),
        "keyless-regexp": policies.Identity(
            subject_regexp=regexp(signer), issuer_regexp=regexp(SA_ISSUER)
        ),
        "keyless-attest": policies.Identity(subject=signer, issuer=SA_ISSUER),
    }


def finish(refs: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The rendered variants with their keyless attestors filled in (or left out when the
    run could not sign keyless)."""
    out = {k: v for k, v in refs.items() if k not in VARIANTS}
    if not record.get("fulcio_root"):
        return out
    by_name = identities(record)
    for name in VARIANTS:
        if name not in refs:
            continue
        twin = name.startswith("ivpol-")
        base = name.removeprefix("ivpol-")
        render = policies.ivpol if twin else policies.cpol
        doc = render(refs[name].doc, by_name[base], record["fulcio_root"])
        if base == "keyless-attest":
            # The attestation is checked by the rule's attestors: the same keyless identity.
            attest = (
                attestations.require_vuln_scan_ivpol
                if twin
                else attestations.require_vuln_scan_cpol
            )
            doc = attest(doc)
        out[name] = dataclasses.replace(refs[name], doc=doc)
    return out


def unavailable(res: RunContext) -> str | None:
    # The run's own cluster (the local target): its issuer is ours to name and to serve.
    if not res.target.disposable:
        return (
            "keyless signing needs an OIDC issuer this machine can run Fulcio for: the local "
            f"target's apiserver; --target {res.target.name} has none here"
        )
    return None


def identities_namespace(res: RunContext) -> str:
    """Where the service accounts live (known before the cluster is up: it names the
    identities the foreign CA's certificate claims)."""
    return res.namespace_name("keyless-identities")


def sign_foreign(
    res: RunContext, cosign: Cosign, keys: dict[str, KeyPair], images: dict[str, oci.PushedImage]
) -> dict[str, Any]:
    """KEY-04's image, signed with a certificate for `signer` from a CA of no policy's: it
    needs the registry only, so it is done in the signing batch (during the boot when staged)."""
    workdir = res.target.run_dir / "keyless"
    workdir.mkdir(parents=True, exist_ok=True)
    identity = subject(identities_namespace(res), SIGNER)
    foreign = foreign_ca.issue(keys["third"].public_pem, identity, SA_ISSUER, workdir)
    image = images["kl-foreign"]
    cosign.sign_with_certificate(keys["third"], foreign.certificate, foreign.chain, image.by_digest)
    return {
        "foreign_root": foreign.root_pem,
        "foreign_verified": _verifies(cosign, workdir, foreign.root_pem, identity, image),
    }


def sign(res: RunContext, cosign: Cosign, images: dict[str, oci.PushedImage]) -> dict[str, Any]:
    """Sign KEY-*'s images with Fulcio; returns the record the tests read (no secrets in it;
    `sign_foreign`'s facts are added by the caller)."""
    if why := unavailable(res):
        return {"unavailable": why}
    started = time.monotonic()
    cluster = res.cluster
    namespace = identities_namespace(res)
    config = cluster.api.configuration
    port = urlsplit(config.host).port or 443
    workdir = res.target.run_dir / "keyless"
    workdir.mkdir(parents=True, exist_ok=True)
    predicate = workdir / "vuln.json"
    now = datetime.datetime.now(datetime.UTC)
    predicate.write_text(json.dumps(attestations.vuln_predicate(0, now)))

    def prepare() -> None:
        cluster.create_namespace(namespace, res.target.run_id)
        for account in (SIGNER, IMPOSTOR):
            _service_account(cluster.core, namespace, account, res.target.run_id)
        _allow_discovery(cluster.api, res.target.run_id)

    def sign_as(account: str, fulcio_url: str) -> None:
        signs, attests = WORK[account]
        token = workdir / f"{account}.token"
        try:
            _write_secret(token, _token(cluster.core, namespace, account))
            cosign.sign_keyless(token, fulcio_url, [images[r].by_digest for r in signs])
            for role in attests:
                ref = images[role].by_digest
                cosign.attest_keyless(token, fulcio_url, ref, predicate, "vuln")
        finally:
            token.unlink(missing_ok=True)

    with ThreadPoolExecutor(max_workers=2) as pool:
        # The cluster's side while Fulcio starts; then both identities at once.
        prepared = pool.submit(prepare)
        ca = Path(config.ssl_ca_cert)
        with LocalFulcio(
            res.target.run_dir, pins.path_of("fulcio"), port, ca, res.settings.timeouts
        ) as fulcio:
            prepared.result()
            list(pool.map(lambda account: sign_as(account, fulcio.url), WORK))
            root = fulcio.root_pem
    return {
        "fulcio_root": root,
        "issuer": SA_ISSUER,
        "namespace": namespace,
        "subjects": {a: subject(namespace, a) for a in (SIGNER, IMPOSTOR)},
        "seconds": round(time.monotonic() - started, 2),
    }


def _verifies(
    cosign: Cosign, workdir: Path, root_pem: str, identity: str, image: oci.PushedImage
) -> bool:
    """Whether cosign accepts the foreign certificate's signature under that CA's own root:
    KEY-04's denial means "not trusted", not "malformed"."""
    root = workdir / "foreign-root.pem"
    root.write_text(root_pem)
    return cosign.verify_certificate(identity, SA_ISSUER, root, image.by_digest).returncode == 0


def _write_secret(path: Path, token: str) -> None:
    redact.register(token)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token)


def _service_account(core: client.CoreV1Api, namespace: str, name: str, run_id: str) -> None:
    body = client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name=name, labels={RUN_LABEL: run_id})
    )
    try:
        core.create_namespaced_service_account(namespace, body)
    except ApiException as err:
        if err.status != 409:
            raise


def _token(core: client.CoreV1Api, namespace: str, account: str) -> str:
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[CLIENT_ID], expiration_seconds=600)
    )
    made = core.create_namespaced_service_account_token(account, namespace, request)
    return str(made.status.token)


def _allow_discovery(api: client.ApiClient, run_id: str) -> None:
    """Fulcio reads the issuer's discovery document and keys anonymously (the local target's
    own cluster only: `unavailable` keeps every other target out)."""
    body = client.V1ClusterRoleBinding(
        metadata=client.V1ObjectMeta(name=DISCOVERY_BINDING, labels={RUN_LABEL: run_id}),
        role_ref=client.V1RoleRef(
            api_group="rbac.authorization.k8s.io",
            kind="ClusterRole",
            name="system:service-account-issuer-discovery",
        ),
        subjects=[
            client.RbacV1Subject(
                kind="Group", name="system:unauthenticated", api_group="rbac.authorization.k8s.io"
            )
        ],
    )
    try:
        client.RbacAuthorizationV1Api(api).create_cluster_role_binding(body)
    except ApiException as err:
        if err.status != 409:
            raise

"""Session resources of the scenarios beyond the seed: more images and signatures, a third
key, the policy variants, and the Audit scenario's pods. Built once per run by
`signcheck.run.resources.RunResources.create` together with the seed's (only the process that made a
key pair knows its password, so all signing happens there), and read back by every worker.

Policy variants coexist in one run: each matches only the run's namespaces labelled
`signcheck.io/variant=<name>` (see `signcheck.kyverno.cpol.namespace_selector`), so every variant
is applied once per session and every test picks one by the namespace it asks for.
"""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from signcheck.artefacts import faultproxy, indexes
from signcheck.clients import k8s, oci
from signcheck.errors import SigncheckError
from signcheck.kyverno import attestations, cpol, ivpol
from signcheck.kyverno.cpol import VARIANT_LABEL
from signcheck.report.summary import admission_record
from signcheck.run import attesting, background, keyless
from signcheck.run.context import RunContext
from signcheck.target import Target
from signcheck.tools import gobuild
from signcheck.tools.cosign import Cosign, KeyPair, SignatureFormat

Api = Literal["cpol", "ivpol"]

IMAGES = (
    "thirdkey",
    "repoint-cold-cpol",
    "repoint-cold-ivpol",
    "repoint-warm-cpol",
    "repoint-warm-nocache",
    "repoint-warm-ivpol",
    "sigcopy-cpol",
    "sigcopy-ivpol",
    "tamper-cpol",
    "tamper-ivpol",
    "fmt-cosign-v2-legacy",
    "fmt-cosign-v3-legacy",
    "fmt-cosign-v3-bundle",
    "exc-unsigned-b",
    background.REVOKED,
    *attesting.IMAGES,
    *keyless.IMAGES,
)
"""Images the scenarios push, one repository each under the run's path."""


OUTSIDE = "outside"
"""An unsigned image in a repository outside every policy's `imageReferences`."""


def outside_repository(target: Target) -> str:
    # Beside the run's path, not under it: the policies match `<prefix>/<run id>/*`.
    return target.registry.repository(f"{target.run_id}-outside", OUTSIDE)


PULL_SECRET = "regcred"
"""Kyverno's image pull secret as the seed's chart names it (`imagePullSecrets.regcred`)."""

MAIN = "main"
"""The seed's policy (`check-image`): the run's namespaces without a variant label."""


@dataclass(frozen=True)
class Variant:
    name: str
    api: Api
    about: str
    needs_auth: bool = False
    """Only meaningful (and only applied) when the registry requires credentials."""


# Variants whose module renders their specifics: (api, about, PolicySpec/IvpolSpec overrides).
OWN_VARIANTS = {**background.VARIANTS, **keyless.VARIANTS}
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("rotation", "cpol", "two keys (the seed's and the other), `count: 1`"),
        Variant("skip", "cpol", "`skipImageReferences` lists the unsigned image's repository"),
        Variant("digest-required", "cpol", "`mutateDigest: false` (`verifyDigest` default true)"),
        Variant("digest-optional", "cpol", "`mutateDigest: false`, `verifyDigest: false`"),
        Variant("nocache", "cpol", "`useCache: false`: no verification cache for the rule"),
        Variant(
            "audit",
            "cpol",
            "`validationFailureAction: Audit` (`mutateDigest: false`, which Kyverno requires "
            "for Audit, and `verifyDigest: false`, so a pod by tag is reported for its "
            "signature rather than for `missing digest`)",
        ),
        Variant("bundle", "cpol", "`type: SigstoreBundle` (cosign v3 bundles)"),
        Variant(
            "nocreds",
            "cpol",
            "`imageRegistryCredentials` without secrets: Kyverno pulls anonymously",
            needs_auth=True,
        ),
        Variant(
            "pull-creds",
            "cpol",
            "`imageRegistryCredentials.secrets` names Kyverno's own pull secret (`regcred`): "
            "used beside the imagePullSecrets a pod brings",
            needs_auth=True,
        ),
        Variant("ivpol", "ivpol", "the seed's policy as an ImageValidatingPolicy"),
        Variant(
            "ivpol-ephemeral",
            "ivpol",
            "the same matching `pods/ephemeralcontainers` too (no autogen then)",
        ),
        Variant("ivpol-rotation", "ivpol", "two cosign attestors, either verifies"),
        Variant(
            "ivpol-containers-only",
            "ivpol",
            "verifies `images.containers` only, `required` default (true)",
        ),
        Variant(
            "ivpol-not-required",
            "ivpol",
            "verifies `images.containers` only, `required: false`",
        ),
        Variant(
            "ivpol-nocreds",
            "ivpol",
            "`credentials` without secrets: Kyverno pulls anonymously",
            needs_auth=True,
        ),
        Variant(
            "registry-faults",
            "cpol",
            "`imageReferences` also cover the fault proxy's addresses (the registry's IP, any "
            "port): the run's images through a misbehaving registry",
        ),
        Variant(
            "ivpol-registry-faults",
            "ivpol",
            "the same, with a webhook timeout of its own "
            f"({faultproxy.POLICY_TIMEOUT_SECONDS} s) shorter than the slow registry's delay",
        ),
        *(Variant(name, api, about) for name, (api, about, _) in OWN_VARIANTS.items()),
        Variant(
            "attest",
            "cpol",
            "the seed's rule also requiring a vuln attestation signed by the run's key: no "
            f"critical finding, scan at most {attestations.MAX_AGE_HOURS}h old",
        ),
        Variant("ivpol-attest", "ivpol", "the same as an ImageValidatingPolicy"),
        Variant("attest-bundle", "cpol", "`attest` with `type: SigstoreBundle`"),
        Variant(
            "attest-supply",
            "cpol",
            "the seed's rule also requiring a CycloneDX SBOM and SLSA v1 provenance from the "
            "trusted builder, both signed by the run's key",
        ),
        Variant("ivpol-attest-supply", "ivpol", "the same as an ImageValidatingPolicy"),
    )
}

FORMATS: dict[str, tuple[str, SignatureFormat]] = {
    "fmt-cosign-v2-legacy": ("cosign-v2", "legacy"),
    "fmt-cosign-v3-legacy": ("cosign-v3", "legacy"),
    "fmt-cosign-v3-bundle": ("cosign-v3", "bundle"),
}
"""Compatibility images: role -> (cosign tool, signature format)."""

SIGNED_WITH_MAIN = (
    "repoint-cold-cpol",
    "repoint-cold-ivpol",
    "repoint-warm-cpol",
    "repoint-warm-nocache",
    "repoint-warm-ivpol",
    "tamper-cpol",
    "tamper-ivpol",
    *indexes.SIGNED,
    *attesting.IMAGES,
)


@dataclass(frozen=True)
class PolicyRef:
    """One policy the run applied, as a test needs to know it."""

    variant: str
    kind: str
    name: str
    rule: str | None
    doc: dict[str, Any] = field(repr=False)

    @property
    def api(self) -> Api:
        return "ivpol" if self.kind == cpol.IMAGE_VALIDATING_POLICY.kind else "cpol"


@dataclass(frozen=True)
class Scenarios:
    images: dict[str, oci.PushedImage]
    outside: oci.PushedImage
    policies: dict[str, PolicyRef]
    registry_requires_auth: bool
    audit_pods: dict[str, dict[str, Any]]
    """Role -> the admission record of the Audit scenario's pod."""
    audit_namespace: str | None
    compat: dict[str, Any]
    """`referrers_api`, `storage` (role -> tags cosign left), `errors` (role -> why it is
    not signed)."""
    updates: dict[str, Any] = field(default_factory=dict)
    """`signcheck.run.updates`: UPD-01/02's namespaces, brought under a policy at setup."""
    background: dict[str, Any] = field(default_factory=dict)
    """`signcheck.run.background`: BG-01's pods, scans and when the signature went."""
    keyless: dict[str, Any] = field(default_factory=dict)  # signcheck.run.keyless.sign

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scenarios:
        return cls(
            images={k: oci.PushedImage(**v) for k, v in data["images"].items()},
            outside=oci.PushedImage(**data["outside"]),
            policies={k: PolicyRef(**v) for k, v in data["policies"].items()},
            registry_requires_auth=bool(data["registry_requires_auth"]),
            audit_pods=dict(data["audit_pods"]),
            audit_namespace=data.get("audit_namespace"),
            compat=dict(data["compat"]),
            updates=dict(data.get("updates") or {}),
            background=dict(data.get("background") or {}),
            keyless=dict(data.get("keyless") or {}),
        )


def policy_name(res: RunContext, variant: str) -> str:
    # `check-image` -> `check-image-<variant>`, `check-image-<run>` -> `check-image-<v>-<run>`
    return res.policy_name.replace("check-image", f"check-image-{variant}", 1)


# -- images and signatures -------------------------------------------------------------


def push_images(
    res: RunContext, catalogue: bool = True
) -> tuple[dict[str, oci.PushedImage], oci.PushedImage]:
    """The scenarios' images (none when only the seed's tests run) and the outside one."""
    run_id = res.target.run_id
    roles = IMAGES if catalogue else ()
    images = {role: res.registry.push_image(res.repository(role), run_id) for role in roles}
    if catalogue:
        images.update(indexes.push_all(res.registry, res.repository, run_id))
    outside = res.registry.push_image(outside_repository(res.target), run_id)
    return images, outside


def sign_images(
    res: RunContext,
    cosign: Cosign,
    keys: dict[str, KeyPair],
    images: dict[str, oci.PushedImage],
) -> dict[str, Any]:
    """Sign the scenarios' images (the seed's the caller signs): a few cosign processes per
    key and format, run in parallel. Returns the compatibility facts:
    which format images got signed and how cosign stored each signature."""
    main = keys["main"]
    with_main = [images[r].by_digest for r in SIGNED_WITH_MAIN]
    # cosign decrypts the key (scrypt, ~0.2 s of CPU) once per digest, not once per process
    # (sign.go's signDigest), so the longest batch is split in two, one per core: it is what
    # the tests wait for.
    half = (len(with_main) + 1) // 2
    batches: list[tuple[Cosign, KeyPair, SignatureFormat, list[str]]] = [
        (cosign, main, "legacy", with_main[:half]),
        (cosign, main, "legacy", with_main[half:]),
        (cosign, keys["third"], "legacy", [images["thirdkey"].by_digest]),
    ]
    errors: dict[str, str] = {}
    tools: dict[str, Cosign | None] = {res.settings.cosign_tool: cosign}
    for role, (tool, fmt) in FORMATS.items():
        if tool not in tools:
            tools[tool] = _other_cosign(res, cosign, tool, errors)
        signer = tools[tool]
        if signer is None:
            errors[role] = errors[f"tool:{tool}"]
            continue
        batches.append((signer, main, fmt, [images[role].by_digest]))
    if (v3 := tools.get("cosign-v3")) is not None:
        # COMPAT-02's images: a v3 bundle beside their legacy signature (SIGNED_WITH_MAIN).
        batches.append((v3, main, "bundle", [images[r].by_digest for r in attesting.FORMATS]))

    def sign(batch: tuple[Cosign, KeyPair, SignatureFormat, list[str]]) -> None:
        signer, key, fmt, references = batch
        signer.sign_all(key, references, fmt)

    with ThreadPoolExecutor(max_workers=4) as pool:
        foreign = pool.submit(keyless.sign_foreign, res, cosign, keys, images)
        list(pool.map(sign, batches))
    # Attested after the images are signed: an attestation does not need the signature, but
    # a policy checks the signature first.
    attesting.attest_all(res, cosign, keys, images, tools)
    storage = {role: res.registry.tags(images[role].repository) for role in FORMATS}
    return {
        "referrers_api": res.registry.has_referrers_api(images["fmt-cosign-v3-bundle"]),
        "storage": storage,
        "errors": {k: v for k, v in errors.items() if not k.startswith("tool:")},
        "cosign": {name: c.version for name, c in tools.items() if c is not None},
        "keyless_foreign": foreign.result(),
    }


def _other_cosign(
    res: RunContext, like: Cosign, tool: str, errors: dict[str, str]
) -> Cosign | None:
    """The other cosign pin (for the compatibility images), with the run's cosign's KMS
    credentials; a build failure is recorded, so the compatibility scenarios report it
    instead of silently running without it."""
    try:
        gobuild.ensure([tool])
        other = Cosign.from_tools(
            res.target.registry,
            res.target.run_dir / f"cosign-{tool}",
            tool,
            res.settings.timeouts.cosign,
        )
    except SigncheckError as err:
        errors[f"tool:{tool}"] = f"{tool} is not available: {err.message}"
        return None
    other.extra_env = dict(like.extra_env)
    other.nice = like.nice
    return other


# -- policies -----------------------------------------------------------------------------


def variant_policies(
    res: RunContext,
    main: KeyPair,
    other: KeyPair,
    registry_requires_auth: bool,
) -> dict[str, PolicyRef]:
    """Every applicable variant, rendered (not applied). None under `--seed-exact-policy`:
    the seed's cluster-wide policy would govern their namespaces too."""
    if res.settings.seed_exact_policy:
        return {}
    target = res.target
    glob = (target.registry.run_glob(target.run_id),)
    keys = (main.public_pem,)
    insecure = target.registry.scheme == "http"
    anonymous = {"allowInsecureRegistry": insecure, "providers": [], "secrets": []}
    cpol_overrides: dict[str, dict[str, Any]] = {
        "rotation": {"public_keys": (main.public_pem, other.public_pem)},
        "skip": {"skip_image_references": (res.repository("unsigned") + "*",)},
        "digest-required": {"mutate_digest": False},
        "digest-optional": {"mutate_digest": False, "verify_digest": False},
        "nocache": {"use_cache": False},
        "audit": {"action": "Audit", "mutate_digest": False, "verify_digest": False},
        "bundle": {"signature_type": "SigstoreBundle"},
        "nocreds": {"registry_credentials": anonymous},
        "pull-creds": {"registry_credentials": {**anonymous, "secrets": [PULL_SECRET]}},
    }
    faults_glob = (faultproxy.image_glob(target.registry, target.run_id),)
    cpol_overrides["registry-faults"] = {"image_references": faults_glob}
    iv: dict[str, dict[str, Any]] = {
        "ivpol": {},
        "ivpol-ephemeral": {"ephemeral": True},
        "ivpol-rotation": {"public_keys": (main.public_pem, other.public_pem)},
        "ivpol-containers-only": {"checks": "containers"},
        "ivpol-not-required": {"checks": "containers", "required": False},
        "ivpol-nocreds": {"credentials": {"allowInsecureRegistry": insecure}},
        "ivpol-registry-faults": {
            "image_references": faults_glob,
            "timeout_seconds": faultproxy.POLICY_TIMEOUT_SECONDS,
        },
    }
    for name, (api, _, extra) in OWN_VARIANTS.items():
        (cpol_overrides if api == "cpol" else iv)[name] = extra
    for name in ("attest", "attest-supply"):
        cpol_overrides[name], iv[f"ivpol-{name}"] = {}, {}
    cpol_overrides["attest-bundle"] = {"signature_type": "SigstoreBundle"}
    then = {
        "attest": attestations.require_vuln_scan_cpol,
        "ivpol-attest": attestations.require_vuln_scan_ivpol,
        "attest-bundle": attestations.require_vuln_scan_cpol,
        "attest-supply": attestations.require_supply_chain_cpol,
        "ivpol-attest-supply": attestations.require_supply_chain_ivpol,
    }
    creds = ivpol.credentials_for(
        target.versions.get("kyverno"), registry_requires_auth, insecure, PULL_SECRET
    )
    legacy: dict[str, Any] = {"credentials": creds} if creds else {}
    refs: dict[str, PolicyRef] = {}
    for name, variant in VARIANTS.items():
        if variant.needs_auth and not registry_requires_auth:
            continue
        pname = policy_name(res, name)
        if variant.api == "cpol":
            overrides = {"public_keys": keys, "image_references": glob, **cpol_overrides[name]}
            doc = cpol.render_cluster_policy(
                cpol.PolicySpec(
                    run_id=target.run_id,
                    name=pname,
                    variant=name,
                    **overrides,
                )
            )
            doc = then[name](doc) if name in then else doc
            refs[name] = PolicyRef(name, "ClusterPolicy", pname, "check-image", doc)
        else:
            overrides = {"public_keys": keys, "image_references": glob, **legacy, **iv[name]}
            doc = ivpol.render(
                ivpol.IvpolSpec(
                    run_id=target.run_id,
                    name=pname,
                    variant=name,
                    **overrides,
                )
            )
            doc = then[name](doc) if name in then else doc
            refs[name] = PolicyRef(name, "ImageValidatingPolicy", pname, None, doc)
    return refs


# -- the Audit scenario's pods --------------------------------------------------------------


AUDIT_ROLES = ("signed", "unsigned")


def start_audit(
    res: RunContext, seed_images: dict[str, oci.PushedImage]
) -> tuple[str, dict[str, dict[str, Any]]]:
    """Create the Audit scenario's pods now: Kyverno's reports controller turns admission
    results into a PolicyReport only after a fixed delay (about 10 to 20 s in v1.19), which
    the run spends on other tests instead of waiting. Returns the namespace and, per pod
    (by role), the admission record."""
    run_id = res.target.run_id
    ns = res.namespace_name("audit-" + secrets.token_hex(2))
    cluster = res.cluster
    cluster.create_namespace(ns, run_id, labels={VARIANT_LABEL: "audit"})
    cpol.wait_namespace_seen(cluster, ns, run_id, res.settings.timeouts.policy_ready)
    pods = {}
    for role in AUDIT_ROLES:
        image = seed_images[role].by_tag
        result = cluster.create(k8s.pod(role, ns, image, run_id), image=image)
        pods[role] = admission_record(f"create Pod {ns}/{role}", image, result)
    return ns, pods

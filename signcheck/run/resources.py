"""One conformance run's resources, built once and removed completely.

`RunResources.create` pushes the test images, makes the key pairs, signs, and applies the
policy (each step timed as a phase). Removing them is `signcheck.run.removal`'s job.
"""

from __future__ import annotations

import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from signcheck.artefacts import images, signing
from signcheck.clients import oci
from signcheck.clients.k8s import Cluster
from signcheck.kyverno import cpol
from signcheck.localenv import nodeimage
from signcheck.run import drift, keyless, scenarios, teardown_probe
from signcheck.run.phases import Phases
from signcheck.run.removal import IMAGES
from signcheck.settings.config import Settings
from signcheck.target import Target
from signcheck.tools.cosign import Cosign, KeyPair


def policy_name(target: Target, settings: Settings) -> str:
    # The seed's name on a cluster of the run's own. On a shared cluster two runs at once must
    # not overwrite each other's policy.
    if target.disposable or settings.seed_exact_policy:
        return "check-image"
    return f"check-image-{target.run_id}"


def namespace_name(run_id: str, test_name: str) -> str:
    """A DNS-label namespace per test: short, readable, unique within the run (a name too
    long for a label keeps its start and a hash of the whole, so parametrized tests whose
    names differ only at the end never share a namespace)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")
    suffix = run_id.rsplit("-", 1)[-1]
    name = f"sc-{suffix}-{slug}"
    if len(name) > 63:
        digest = hashlib.sha256(slug.encode()).hexdigest()[:8]
        name = f"{name[:54].rstrip('-')}-{digest}"
    return name


@dataclass(frozen=True)
class Images:
    signed: oci.PushedImage
    unsigned: oci.PushedImage
    otherkey: oci.PushedImage


@dataclass(frozen=True)
class Staged:
    """The registry half of a run's resources (in memory only: it holds the key pairs'
    passwords)."""

    cosign: Cosign
    keys: dict[str, KeyPair]
    pushed: dict[str, oci.PushedImage]
    scenario_images: dict[str, oci.PushedImage]
    outside: oci.PushedImage
    catalogue: bool
    compat: dict[str, Any] | None = None
    """`sign_images`' facts once every other image is signed; None before `stage_rest`."""


@dataclass(frozen=True)
class SessionState:
    """What every test may know about the run's session resources (JSON-safe, no secrets)."""

    run_id: str
    images: Images
    public_key: Path
    other_public_key: Path
    cosign_tool: str
    cosign_version: str
    policy: dict[str, Any]
    """The rendered policy as applied (None-like {} when sabotaged away)."""
    policy_name: str
    rule_name: str
    sabotage: str
    scenarios: dict[str, Any]
    """`signcheck.run.scenarios.Scenarios.to_dict()`: what the scenarios beyond the seed use."""
    teardown_probe: dict[str, Any]
    """`signcheck.run.teardown_probe.start()`: SEED-08's miniature run, already torn down."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["public_key"] = str(self.public_key)
        data["other_public_key"] = str(self.other_public_key)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionState:
        imgs = {k: oci.PushedImage(**v) for k, v in data["images"].items()}
        return cls(
            run_id=data["run_id"],
            images=Images(**imgs),
            public_key=Path(data["public_key"]),
            other_public_key=Path(data["other_public_key"]),
            cosign_tool=data["cosign_tool"],
            cosign_version=data["cosign_version"],
            policy=data["policy"],
            policy_name=data["policy_name"],
            rule_name=data["rule_name"],
            sabotage=data["sabotage"],
            scenarios=data["scenarios"],
            teardown_probe=data.get("teardown_probe") or {},
        )


class RunResources:
    def __init__(self, target: Target, settings: Settings, phases: Phases) -> None:
        self.target = target
        self.settings = settings
        self.phases = phases
        self.program = nodeimage.program().read_bytes() if target.containers_run else None
        self.registry = oci.OciClient(target.registry, self.program)
        self._cluster: Cluster | None = None

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            self._cluster = Cluster(self.target.kubeconfig, self.target.context)
        return self._cluster

    def cosign(self) -> Cosign:
        return Cosign.from_tools(
            self.target.registry,
            self.target.run_dir / "cosign",
            self.settings.cosign_tool,
            self.settings.timeouts.cosign,
        )

    def repository(self, role: str) -> str:
        return self.target.registry.repository(self.target.run_id, role)

    def for_run(self, run_id: str) -> RunResources:
        """The resources of a run with `run_id` on the same target (registry, cluster, run
        directory): SEED-08's miniature run."""
        return RunResources(replace(self.target, run_id=run_id), self.settings, self.phases)

    @property
    def policy_name(self) -> str:
        return policy_name(self.target, self.settings)

    def namespace_name(self, slug: str) -> str:
        return namespace_name(self.target.run_id, slug)

    def render_policy(self, public_keys: tuple[str, ...], **overrides: Any) -> dict[str, Any]:
        return cpol.run_policy(
            self.target,
            public_keys,
            name=self.policy_name,
            seed_exact=self.settings.seed_exact_policy,
            **overrides,
        )

    def stage_first(self, catalogue: bool = True, nice: int = 0) -> Staged:
        """The registry half's first step: key pairs, every image pushed, the seed's image
        signed. Needs the registry only (never the cluster). `nice`: cosign's processes run
        at that lower priority (see `Cosign.nice`)."""
        run_id = self.target.run_id
        self.registry.ping()
        cosign = self.cosign()
        cosign.nice = nice
        keys_dir = self.target.run_dir / "keys"

        def main_key() -> KeyPair:
            # The user's cosign.key or KMS key when configured, else a key pair per run.
            made = signing.main_key(self.settings, cosign, keys_dir / "main", create=True)
            return made or cosign.generate_key_pair(keys_dir / "main")

        with ThreadPoolExecutor(max_workers=3) as pool:
            # Key pairs are CPU-bound cosign processes (scrypt): made while images are pushed.
            roles = ("other", "third") if catalogue else ("other",)
            made = [
                pool.submit(main_key),
                *(pool.submit(cosign.generate_key_pair, keys_dir / n) for n in roles),
            ]
            with self.phases.time("images"):
                push = images.pusher(
                    self.settings, self.target.registry, self.target.run_dir, self.program
                )
                pushed = {role: push(self.repository(role), run_id) for role in IMAGES}
                scenario_images, outside = scenarios.push_images(self, catalogue)
            with self.phases.time("signing"):
                keys = dict(zip(("main", *roles), (f.result() for f in made), strict=True))
                cosign.sign_all(keys["main"], [pushed["signed"].by_digest], "legacy")
        return Staged(cosign, keys, pushed, scenario_images, outside, catalogue)

    def stage_rest(self, first: Staged) -> dict[str, Any]:
        """The registry half's second step: every other image signed (the other key's, the
        scenarios' in each format). Returns the compatibility facts (`sign_images`)."""
        with ThreadPoolExecutor(max_workers=2) as pool:
            signed_other = pool.submit(
                self.phases.timed("signing", first.cosign.sign_all),
                first.keys["other"],
                [first.pushed["otherkey"].by_digest],
            )
            compat = (
                self.phases.timed("signing", scenarios.sign_images)(
                    self, first.cosign, first.keys, first.scenario_images
                )
                if first.catalogue
                else {}
            )
            signed_other.result()
        return compat

    def stage(self, catalogue: bool = True, nice: int = 0) -> Staged:
        """The whole registry half (`stage_first`, then `stage_rest`): what a run can do
        while its cluster is still booting (see `signcheck.run.staging`)."""
        first = self.stage_first(catalogue, nice)
        return replace(first, compat=self.stage_rest(first))

    def create(self, catalogue: bool = True, staged: Staged | None = None) -> dict[str, Any]:
        """Build the session resources; returns `SessionState.to_dict()`. `catalogue=False` makes
        only what the seed's tests use (no scenario images, third key or policy variants).
        `staged`: the registry half already done (`stage`) while the cluster booted."""
        run_id = self.target.run_id
        first = staged or self.stage_first(catalogue)
        cosign, keys, pushed = first.cosign, first.keys, first.pushed
        scenario_images, outside = first.scenario_images, first.outside
        main, other = keys["main"], keys["other"]
        with ThreadPoolExecutor(max_workers=3) as pool:
            requires_auth = self.registry.requires_auth()
            variants = (
                scenarios.variant_policies(self, main, other, requires_auth) if catalogue else {}
            )
            # Every other image is signed meanwhile (unless staged), while the Audit scenario
            # starts first: its PolicyReport comes only after Kyverno's fixed aggregation
            # delays (about 20 s in v1.19), the longest wait of the run, so its clock starts
            # as early as it can.
            signed_rest = None if first.compat is not None else pool.submit(self.stage_rest, first)
            # UPD's and BG-01's first steps, beside the signing and the Audit scenario's start
            # (see signcheck.run.drift).
            drifting = pool.submit(
                drift.start,
                self,
                pushed,
                scenario_images,
                variants,
                lambda refs: cosign.sign_all(main, refs, "legacy"),
            )
            # KEY-*'s keyless signatures need the cluster (tokens) and a Fulcio of the run's.
            keyless_signing = (
                pool.submit(
                    self.phases.timed("signing", keyless.sign), self, cosign, scenario_images
                )
                if variants
                else None
            )
            audit_ns: str | None = None
            audit_pods: dict[str, dict[str, Any]] = {}
            if "audit" in variants:
                with self.phases.time("policy ready"):
                    cpol.apply_all(
                        self.cluster, [variants["audit"].doc], self.settings.timeouts.policy_ready
                    )
                audit_ns, audit_pods = scenarios.start_audit(self, pushed)
            signing.verify_with_kms(cosign, main, pushed["signed"].by_digest)
            sabotage = self.settings.sabotage
            policy: dict[str, Any] = {}
            name = self.policy_name
            to_apply: list[dict[str, Any]] = []
            if sabotage != "no-policy":
                key = other.public_pem if sabotage == "other-key" else main.public_pem
                if sabotage == "audit":
                    policy = self.render_policy((key,), action="Audit", mutate_digest=False)
                else:
                    policy = self.render_policy((key,))
                to_apply.append(policy)
            keyless_record = keyless_signing.result() if keyless_signing else {}
            variants = keyless.finish(variants, keyless_record)
            to_apply += [
                ref.doc
                for v, ref in variants.items()
                if v != "audit" and not drift.is_drift_variant(v)
            ]
            with self.phases.time("policy ready"):
                # One wait for all: Kyverno configures its webhooks for them together. While
                # UPD's Deployments are made: their namespaces carry a variant label no policy
                # selects until `drift.arm`, so the policies may exist already.
                cpol.apply_all(self.cluster, to_apply, self.settings.timeouts.policy_ready)
            compat = signed_rest.result() if signed_rest else first.compat or {}
            drift_record = drifting.result()
        with ThreadPoolExecutor(max_workers=1) as pool:
            # Beside SEED-08's miniature run: both mostly wait on the API server and Kyverno.
            arming = pool.submit(drift.arm, self, drift_record, pushed, scenario_images)
            probe = teardown_probe.start(self, main.public_pem)
            drift_record = arming.result()
        extra = scenarios.Scenarios(
            images=scenario_images,
            outside=outside,
            policies=variants,
            registry_requires_auth=requires_auth,
            audit_pods=audit_pods,
            audit_namespace=audit_ns,
            compat=compat,
            updates=drift_record.get("updates") or {},
            background=drift_record.get("background") or {},
            keyless={**keyless_record, **compat.pop("keyless_foreign", {})},
        )
        state = SessionState(
            run_id=run_id,
            images=Images(**pushed),
            public_key=main.public_key,
            other_public_key=other.public_key,
            cosign_tool=self.settings.cosign_tool,
            cosign_version=cosign.version,
            policy=policy,
            policy_name=name,
            rule_name="check-image",
            sabotage=sabotage,
            scenarios=extra.to_dict(),
            teardown_probe=probe,
        )
        return state.to_dict()

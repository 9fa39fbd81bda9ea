"""One conformance run's resources, built once and removed completely.

`RunResources.create` pushes the test images, makes the key pairs, signs, and applies the
policy (each step timed as a phase); `teardown` removes everything the run created, found by
the run id rather than remembered, so it also cleans up after a crashed run; `leftovers`
says what is still there.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from signcheck import images, kyverno, lockout, oci, signing
from signcheck.config import Settings
from signcheck.cosign import Cosign, KeyPair
from signcheck.errors import SigncheckError
from signcheck.k8s import Cluster
from signcheck.shared import Phases
from signcheck.target import Target
from signcheck.wait import until

IMAGES = ("signed", "unsigned", "otherkey")
"""signed: signed with the policy's key; unsigned: never signed; otherkey: signed with a key
the policy does not list."""


def policy_name(target: Target, settings: Settings) -> str:
    # The seed's name on the local target (one environment per run). On a shared cluster two
    # runs at once must not overwrite each other's policy.
    if target.name == "local" or settings.seed_exact_policy:
        return "check-image"
    return f"check-image-{target.run_id}"


def namespace_name(run_id: str, test_name: str) -> str:
    """A DNS-label namespace per test: short, readable, unique within the run."""
    slug = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")
    suffix = run_id.rsplit("-", 1)[-1]
    return f"sc-{suffix}-{slug}"[:63].rstrip("-")


@dataclass(frozen=True)
class Images:
    signed: oci.PushedImage
    unsigned: oci.PushedImage
    otherkey: oci.PushedImage


@dataclass(frozen=True)
class State:
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

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["public_key"] = str(self.public_key)
        data["other_public_key"] = str(self.other_public_key)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
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
        )


class RunResources:
    def __init__(self, target: Target, settings: Settings, phases: Phases) -> None:
        self.target = target
        self.settings = settings
        self.phases = phases
        self.registry = oci.OciClient(target.registry)
        self._cluster: Cluster | None = None
        self.notes: list[str] = []
        """What teardown did beyond the run's own objects (a lockout undone)."""

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

    def render_policy(self, public_keys: tuple[str, ...], **overrides: Any) -> dict[str, Any]:
        spec = kyverno.PolicySpec(
            run_id=self.target.run_id,
            image_references=(self.target.registry.run_glob(self.target.run_id),),
            public_keys=public_keys,
            name=policy_name(self.target, self.settings),
            seed_exact=self.settings.seed_exact_policy,
            **overrides,
        )
        return kyverno.render_cluster_policy(spec)

    def create(self) -> dict[str, Any]:
        """Build the session resources; returns `State.to_dict()`."""
        run_id = self.target.run_id
        self.registry.ping()
        cosign = self.cosign()
        with self.phases.time("images"):
            push = images.pusher(self.settings, self.target.registry, self.target.run_dir)
            pushed = {role: push(self.repository(role), run_id) for role in IMAGES}
        keys_dir = self.target.run_dir / "keys"
        with self.phases.time("signing"):
            # The user's cosign.key or KMS key when configured, else a key pair per run.
            main: KeyPair = signing.main_key(
                self.settings, cosign, keys_dir / "main", create=True
            ) or cosign.generate_key_pair(keys_dir / "main")
            other: KeyPair = cosign.generate_key_pair(keys_dir / "other")
            cosign.sign(main, pushed["signed"].by_digest)
            signing.verify_with_kms(cosign, main, pushed["signed"].by_digest)
            cosign.sign(other, pushed["otherkey"].by_digest)
        sabotage = self.settings.sabotage
        policy: dict[str, Any] = {}
        name = policy_name(self.target, self.settings)
        if sabotage != "no-policy":
            key = other.public_pem if sabotage == "other-key" else main.public_pem
            if sabotage == "audit":
                policy = self.render_policy((key,), action="Audit", mutate_digest=False)
            else:
                policy = self.render_policy((key,))
            policies = kyverno.Policies(self.cluster)
            with self.phases.time("policy ready"):
                policies.apply(policy)
                policies.wait_ready(name, self.settings.timeouts.policy_ready)
        state = State(
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
        )
        return state.to_dict()

    # -- removal ----------------------------------------------------------------------

    def teardown(self) -> list[str]:
        """Remove everything of the run; returns the errors met (teardown never stops
        halfway: each kind of resource is attempted)."""
        errors: list[str] = []
        run_id = self.target.run_id
        try:
            for name in kyverno.Policies(self.cluster).run_policies(run_id):
                kyverno.Policies(self.cluster).delete(name)
        except Exception as err:
            errors.append(f"policies: {err}")
        try:
            for ns in self.cluster.run_namespaces(run_id):
                self.cluster.delete_namespace(ns, wait=None)
        except Exception as err:
            errors.append(f"namespaces: {err}")
        for role in IMAGES:
            try:
                self.registry.delete_repository(self.repository(role))
            except SigncheckError as err:
                errors.append(f"images {role}: {err.message}")
        try:
            # With Kyverno gone, its fail-closed webhook still holds the pod rules our policy
            # put there, and refuses pods in every namespace: never leave a cluster so.
            self.notes += lockout.release(self.cluster)
        except SigncheckError as err:
            errors.append(f"lockout: {err.message}")
        except Exception as err:
            errors.append(f"lockout check: {type(err).__name__}: {err}")
        return errors

    def leftovers(self, wait: float = 0.0) -> dict[str, list[str]]:
        """What of the run still exists (waiting up to `wait` s for namespaces to go)."""
        run_id = self.target.run_id
        found: dict[str, list[str]] = {}
        if wait:
            with contextlib.suppress(SigncheckError):
                until(
                    lambda: not self.cluster.run_namespaces(run_id),
                    what=f"the namespaces of run {run_id} to be deleted",
                    timeout=wait,
                    interval=0.5,
                )
        namespaces = self.cluster.run_namespaces(run_id)
        if namespaces:
            found["namespaces"] = namespaces
        policies = kyverno.Policies(self.cluster).run_policies(run_id)
        if policies:
            found["policies"] = policies
        tags = [
            f"{self.repository(role)}:{tag}"
            for role in IMAGES
            for tag in self.registry.tags(self.repository(role))
        ]
        if tags:
            found["images"] = tags
        return found

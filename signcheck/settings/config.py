"""The suite's settings: from pytest options, then environment variables, validated once.

Timeouts live in `signcheck.timeouts`, shared with the local environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from signcheck import redact
from signcheck.errors import ConfigError
from signcheck.settings import profile
from signcheck.target import KINDS, TARGETS, TargetKind, TargetName
from signcheck.timeouts import Timeouts
from signcheck.tools import pins

COSIGN_TOOLS = profile.COSIGN_TOOLS
KMS_SCHEMES = ("hashivault://", "yckms://", "awskms://", "gcpkms://", "azurekms://")
SABOTAGE = ("none", "no-policy", "audit", "other-key")
"""Deliberately broken setups, so a selftest can prove the suite notices (issue 4)."""


@dataclass(frozen=True)
class Settings:
    target: TargetName = "local"
    nodes: Literal["kwok", "real"] = "kwok"
    kubeconfig: Path | None = None
    context: str | None = None
    registry: str | None = None
    """host[:port] of the registry for the cluster targets."""
    registry_scheme: Literal["http", "https"] = "https"
    registry_ca: Path | None = None
    registry_username: str | None = None
    registry_password_file: Path | None = None
    """Where the registry password is, when SIGNCHECK_REGISTRY_PASSWORD is unset (one per
    cluster of a fleet: each profile names its own file)."""
    registry_prefix: str = "signcheck"
    kyverno_namespace: str = "kyverno"
    kyverno_version: str | None = None
    """`--kyverno-version`: which pinned Kyverno the run starts (local target) or installs
    (`--kyverno-mode install`); default the newest pin. See `signcheck.tools.pins`."""
    cosign_tool: str = "cosign-v2"
    seed_exact_policy: bool = False
    keep: bool = False
    fail_on: Literal["fail", "high", "finding"] = "fail"
    """`--fail-on`: see `signcheck.verdict.model.FAIL_ON`."""
    reports_dir: Path = Path("reports")
    sabotage: str = "none"
    timeouts: Timeouts = field(default_factory=Timeouts)
    # -- cluster and yandex targets (see README, "Targets") ---------------------------
    kyverno_mode: Literal["existing", "install"] = "existing"
    kyverno_chart: str | None = None
    """A chart path or repo reference (`kyverno/kyverno`); default the chart bundled with
    the pinned Kyverno module."""
    kyverno_chart_version: str | None = None
    kyverno_values: Path | None = None
    """Extra Helm values, merged over the seed's."""
    kyverno_regcred_username: str | None = None
    """Kyverno's `imagePullSecrets.regcred` user (the seed: `json_key`); default the
    registry user."""
    kyverno_regcred_password_file: Path | None = None
    """The seed's `--set-file imagePullSecrets.regcred.password=./authorized-key.json`."""
    signing_key: str | None = None
    """A cosign.key path or a KMS reference; default: a key pair generated per run."""
    public_key: Path | None = None
    kms_generate: bool = False
    """Create the KMS key first (`cosign generate-key-pair --kms`), as the seed does."""
    image_builder: Literal["oci", "docker"] = "oci"
    image: str | None = None
    """An existing image the run copies into its repositories instead of building one."""
    policy_reporter: bool = False
    policy_reporter_chart: str | None = None
    yc_folder_id: str | None = None
    yc_zone: str | None = None
    k8s_version: str | None = None
    provision: bool = False
    keep_infra: bool = False
    profile: Path | None = None
    sources: dict[str, str] = field(default_factory=dict, compare=False)
    """Where each setting came from, for error messages (`command line --context`...)."""

    @classmethod
    def from_sources(
        cls,
        cli: dict[str, Any],
        environ: dict[str, str] | None = None,
        **fixed: Any,
    ) -> Settings:
        """Command line over environment over profile over defaults, validated once."""
        values, sources = profile.layered(cli, environ)
        return cls(**fixed, **values, profile=cli.get("profile"), sources=sources).validate()

    def source(self, name: str) -> str:
        opt = profile.BY_FIELD.get(name)
        return self.sources.get(name) or (f"default; set {opt.cli}" if opt else "default")

    @property
    def registry_host(self) -> str:
        return _split_registry(self.registry)[1] if self.registry else ""

    @property
    def registry_repository_prefix(self) -> str:
        """`<path of --registry>/<--registry-prefix>`: `cr.yandex/crp123` puts runs under
        `cr.yandex/crp123/signcheck/<run id>/`."""
        path = _split_registry(self.registry)[2] if self.registry else ""
        return f"{path}/{self.registry_prefix}" if path else self.registry_prefix

    @property
    def effective_registry_scheme(self) -> Literal["http", "https"]:
        scheme = _split_registry(self.registry)[0] if self.registry else None
        return scheme or self.registry_scheme

    @property
    def kms_key(self) -> bool:
        return bool(self.signing_key and self.signing_key.startswith(KMS_SCHEMES))

    @property
    def registry_password(self) -> str | None:
        # Only ever from the environment: a password on the command line ends up in shell
        # history, CI logs and the JUnit report's argv.
        explicit = os.environ.get("SIGNCHECK_REGISTRY_PASSWORD")
        if not explicit and self.registry_password_file and self.registry_password_file.is_file():
            explicit = self.registry_password_file.read_text().strip()
            redact.register(explicit)
        if not explicit and self.kind.token_env:
            return os.environ.get(self.kind.token_env) or None
        return explicit or None

    @property
    def effective_registry_username(self) -> str | None:
        if self.registry_username:
            return self.registry_username
        if self.kind.token_user and self.registry_password:
            return self.kind.token_user
        return None

    @property
    def kind(self) -> TargetKind:
        return KINDS[self.target]

    def validate(self) -> Settings:
        if self.target not in TARGETS:
            raise ConfigError(f"unknown target {self.target!r}: choose one of {', '.join(TARGETS)}")
        if self.cosign_tool not in COSIGN_TOOLS:
            raise ConfigError(
                f"unknown cosign tool {self.cosign_tool!r}: choose one of {', '.join(COSIGN_TOOLS)}"
            )
        if self.sabotage not in SABOTAGE:
            raise ConfigError(f"unknown --signcheck-sabotage {self.sabotage!r}: {SABOTAGE}")
        if self.nodes == "real" and not self.kind.own_cluster:
            raise ConfigError(
                f"--nodes real is for the local target (it boots the node); --target "
                f"{self.target} runs on the cluster's own nodes"
            )
        if self.kyverno_version:
            self._select_kyverno()
        if not self.kind.own_cluster:
            self._validate_cluster()
            if not self.registry and not self.provision:
                raise ConfigError(
                    f"--target {self.target} needs --registry HOST[:PORT][/PATH] (the registry "
                    "the cluster pulls from; or SIGNCHECK_REGISTRY_URL, or `registry` in a "
                    "profile)"
                )
            kubeconfig = self.kubeconfig or _default_kubeconfig()
            if not kubeconfig.is_file() and not self.provision:
                where = self.source("kubeconfig") if self.kubeconfig else "KUBECONFIG/default"
                raise ConfigError(
                    f"--target {self.target} needs a kubeconfig: {kubeconfig} does not exist "
                    f"({where}; pass --kubeconfig or set KUBECONFIG)"
                )
        if self.registry_ca and not self.registry_ca.is_file():
            raise ConfigError(f"--registry-ca {self.registry_ca} does not exist")
        if self.registry_username and not self.registry_password:
            raise ConfigError(
                "--registry-username is set but SIGNCHECK_REGISTRY_PASSWORD is not: "
                "export the password in the environment (or name a --registry-password-file)"
            )
        return self

    def _select_kyverno(self) -> None:
        """Check the version is pinned and select it for this process and its children
        (pytest-xdist's workers, `signcheck env up`), through the variable the tool lookup
        reads: every Kyverno binary, CRD and chart then comes from that version's build."""
        if not self.kind.own_cluster and self.kyverno_mode != "install":
            raise ConfigError(
                f"--kyverno-version picks the Kyverno the run starts or installs: on --target "
                f"{self.target} it needs --kyverno-mode install (with existing, the cluster's "
                "own Kyverno is what is tested)"
            )
        version = self.kyverno_version or ""
        pinned = pins.pinned_versions("kyverno")
        if version not in pinned:
            raise ConfigError(
                f"--kyverno-version {version} ({self.source('kyverno_version')}) is not pinned: "
                f"choose one of {', '.join(pinned)}"
            )
        os.environ[pins.version_var("kyverno")] = version

    def resolved_kubeconfig(self) -> Path:
        return self.kubeconfig or _default_kubeconfig()

    def _validate_cluster(self) -> None:
        """The cluster targets' settings that can be checked without touching anything."""
        if self.kind.can_provision and self.provision and not self.yc_folder_id:
            raise ConfigError(
                "--provision needs the cloud folder: pass --yc-folder-id or set "
                "SIGNCHECK_YC_FOLDER_ID"
            )
        if self.keep_infra and not self.provision:
            raise ConfigError("--keep-infra only makes sense with --provision")
        if self.provision and not self.kind.can_provision:
            provisioning = ", ".join(k.name for k in KINDS.values() if k.can_provision)
            raise ConfigError(f"--provision needs --target {provisioning}")
        if self.registry:
            try:
                _split_registry(self.registry)
            except ValueError as err:
                raise ConfigError(f"--registry ({self.source('registry')}): {err}") from None
        for name in (
            "kyverno_values",
            "kyverno_regcred_password_file",
            "public_key",
            "registry_password_file",
        ):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                opt = profile.BY_FIELD[name]
                raise ConfigError(f"{opt.cli} {path} does not exist ({self.source(name)})")
        if self.kms_generate and not self.kms_key:
            raise ConfigError(
                "--kms-generate needs --signing-key to be a KMS reference "
                f"({', '.join(KMS_SCHEMES)}...), got {self.signing_key!r}"
            )
        if self.image and self.registry and self.image.split("/", 1)[0] != self.registry_host:
            raise ConfigError(
                f"--image {self.image} is not in --registry {self.registry_host}: give an image "
                "of that registry (the run copies it into its own repositories)"
            )
        if self.image and self.image_builder == "docker":
            raise ConfigError("--image and --image-builder docker exclude each other: pick one")


def _default_kubeconfig() -> Path:
    env = os.environ.get("KUBECONFIG", "")
    first = env.split(os.pathsep)[0] if env else ""
    return Path(first) if first else Path.home() / ".kube" / "config"


def _split_registry(value: str) -> tuple[Literal["http", "https"] | None, str, str]:
    """(scheme or None, host[:port], path) from `https://host:port/path` or `host/path`."""
    scheme: Literal["http", "https"] | None = None
    rest = value.strip()
    for prefix in ("https://", "http://"):
        if rest.startswith(prefix):
            scheme = "https" if prefix == "https://" else "http"
            rest = rest[len(prefix) :]
    host, _, path = rest.partition("/")
    if not host or " " in rest or "@" in rest or ":" in path:
        raise ValueError(
            f"{value!r} is not a registry: give HOST[:PORT][/PATH] or https://HOST[:PORT][/PATH]"
        )
    return scheme, host, path.strip("/")

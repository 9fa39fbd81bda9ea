"""Where each setting comes from: the command line wins over the environment, which wins
over a profile file, which wins over the default.

A profile is a TOML file of option names (`registry = "cr.yandex/crp..."`,
`kyverno-mode = "install"`), named with `--profile FILE` or `SIGNCHECK_PROFILE`. Every option
`--foo-bar` has the environment variable `SIGNCHECK_FOO_BAR`, except `--registry`, whose
variable is `SIGNCHECK_REGISTRY_URL` (`SIGNCHECK_REGISTRY` names the registry *binary*,
see `signcheck.tools.pins`).

Secrets are never settings: a profile is a file people commit and share, so a password in
it is refused with the name of the environment variable to use instead.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from signcheck.errors import ConfigError
from signcheck.target import TARGETS
from signcheck.verdict.model import FAIL_ON

Kind = Literal["str", "path", "bool", "choice"]


@dataclass(frozen=True)
class Option:
    """One layered setting: its `Settings` field, how to read it, and its names."""

    field: str
    kind: Kind = "str"
    choices: tuple[str, ...] = ()
    flag: str = ""
    """The command-line spelling; derived from `field` when empty."""
    env: str = ""
    """The environment variable; derived from `flag` when empty."""
    help: str = ""

    @property
    def cli(self) -> str:
        return self.flag or "--" + self.field.replace("_", "-")

    @property
    def env_var(self) -> str:
        return self.env or "SIGNCHECK_" + self.cli.lstrip("-").replace("-", "_").upper()

    @property
    def key(self) -> str:
        """The profile key (dashes; underscores are accepted too)."""
        return self.cli.lstrip("-")


COSIGN_TOOLS = ("cosign-v2", "cosign-v3")
NODE_KINDS = ("kwok", "real")
KYVERNO_MODES = ("existing", "install")
IMAGE_BUILDERS = ("oci", "docker")

OPTIONS: tuple[Option, ...] = (
    Option("target", "choice", TARGETS, help="where to run (default local)"),
    Option(
        "nodes",
        "choice",
        NODE_KINDS,
        help="local target: kwok (fake nodes, default) or real (containerd, kubelet and "
        "kube-proxy in the run's own network namespace; needs root)",
    ),
    Option("kubeconfig", "path", help="cluster targets: kubeconfig (default $KUBECONFIG)"),
    Option("context", help="cluster targets: kubeconfig context (default: current)"),
    Option(
        "registry",
        env="SIGNCHECK_REGISTRY_URL",
        help="cluster targets: registry HOST[:PORT][/PATH] or https://...; the password "
        "only from $SIGNCHECK_REGISTRY_PASSWORD",
    ),
    Option("registry_scheme", "choice", ("https", "http"), help="default https"),
    Option("registry_ca", "path", help="CA bundle for the registry"),
    Option("registry_username", help="registry user"),
    Option(
        "registry_password_file",
        "path",
        help="a file holding the registry password, when $SIGNCHECK_REGISTRY_PASSWORD is "
        "unset (a profile may name the file, never the password)",
    ),
    Option("registry_prefix", help="path under the registry for runs (default signcheck)"),
    Option("kyverno_namespace", help="default kyverno"),
    Option(
        "kyverno_version",
        help="the pinned Kyverno the local target runs, or --kyverno-mode install installs "
        "(default the newest; `signcheck tools list kyverno` and docs/matrix.md)",
    ),
    Option(
        "kyverno_mode",
        "choice",
        KYVERNO_MODES,
        help="existing: check Kyverno is installed and healthy, touch nothing (default); "
        "install: helm install it as the seed does, uninstall at the end",
    ),
    Option("kyverno_chart", help="install: chart path or repo/chart (default: bundled chart)"),
    Option("kyverno_chart_version", help="install: chart version (repo charts)"),
    Option("kyverno_values", "path", help="install: extra values file over the seed's"),
    Option("kyverno_regcred_username", help="install: regcred user (seed: json_key)"),
    Option(
        "kyverno_regcred_password_file",
        "path",
        help="install: regcred password file (seed: authorized-key.json)",
    ),
    Option("cosign_tool", "choice", COSIGN_TOOLS, flag="--cosign", help="default cosign-v2"),
    Option(
        "signing_key",
        help="cosign.key path (password from $COSIGN_PASSWORD) or KMS reference "
        "(hashivault://NAME, yckms:///KEY_ID); default: a key pair per run",
    ),
    Option("public_key", "path", help="the signing key's cosign.pub (checked against it)"),
    Option("kms_generate", "bool", help="create the KMS key first (generate-key-pair --kms)"),
    Option(
        "image_builder",
        "choice",
        IMAGE_BUILDERS,
        help="oci: push without a daemon (default); docker: build fixtures/Dockerfile with "
        "a Docker-API engine ($DOCKER_HOST) and push with it",
    ),
    Option("image", help="an existing image to copy into the run instead of building one"),
    Option("policy_reporter", "bool", help="install Policy Reporter with Helm (seed option)"),
    Option("policy_reporter_chart", help="Policy Reporter chart (path or repo/chart)"),
    Option("seed_exact_policy", "bool", help="the seed's cluster-wide policy"),
    Option("keep", "bool", help="keep the run directory (keys, state, logs)"),
    Option(
        "fail_on",
        "choice",
        FAIL_ON,
        help="what fails the run: fail (default: a broken promise), high (also a high "
        "finding), finding (any finding)",
    ),
    Option("yc_folder_id", help="yandex: cloud folder id"),
    Option("yc_zone", help="yandex: availability zone (default ru-central1-a)"),
    Option("k8s_version", help="yandex: Kubernetes version of the provisioned cluster"),
    Option("provision", "bool", help="yandex: terraform apply terraform/ first"),
    Option("keep_infra", "bool", help="yandex: keep the provisioned infrastructure"),
)
BY_FIELD = {o.field: o for o in OPTIONS}

SECRET_KEYS = {
    "registry_password": "SIGNCHECK_REGISTRY_PASSWORD",
    "password": "SIGNCHECK_REGISTRY_PASSWORD",
    "cosign_password": "COSIGN_PASSWORD",
    "yc_iam_token": "YC_IAM_TOKEN",
    "vault_token": "VAULT_TOKEN",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def convert(opt: Option, raw: Any, source: str) -> Any:
    """A raw value (a string from the environment, any TOML value from a profile) as the
    option's type; an unknown value names the option, the source and the choices."""
    if opt.kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"{opt.cli} = {raw!r} ({source}) is not a boolean: use true or false")
    if opt.kind == "path" and isinstance(raw, Path):
        return raw.expanduser()
    if not isinstance(raw, str):
        raise ConfigError(f"{opt.cli} = {raw!r} ({source}) must be a string")
    if opt.kind == "path":
        return Path(raw).expanduser()
    if opt.kind == "choice" and raw not in opt.choices:
        raise ConfigError(
            f"unknown value {raw!r} for {opt.cli} ({source}): choose one of "
            + ", ".join(opt.choices)
        )
    return raw


def add_options(group: Any) -> None:
    """Register every layered option with pytest (defaults None: unset means "ask the
    environment, then the profile")."""
    group.addoption("--profile", type=Path, default=None, help="a TOML profile of options")
    for opt in OPTIONS:
        kwargs: dict[str, Any] = {"dest": opt.field, "default": None}
        if opt.kind == "bool":
            kwargs["action"] = "store_true"
        elif opt.kind == "choice":
            kwargs["choices"] = opt.choices
        elif opt.kind == "path":
            kwargs["type"] = Path
        help_text = opt.help + ("; " if opt.help else "") + f"env {opt.env_var}"
        group.addoption(opt.cli, help=help_text, **kwargs)


def load_profile(path: Path) -> dict[str, Any]:
    """The options of a profile file, keyed by field name, validated for unknown keys."""
    if not path.is_file():
        raise ConfigError(f"profile {path} does not exist (from --profile / SIGNCHECK_PROFILE)")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"profile {path} is not valid TOML: {err}") from None
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name in SECRET_KEYS:
            raise ConfigError(
                f"profile {path} holds a secret ({key}): remove it and export "
                f"{SECRET_KEYS[name]} instead (profiles are shared files)"
            )
        opt = BY_FIELD.get(name) or next((o for o in OPTIONS if o.key == key), None)
        if opt is None:
            known = ", ".join(o.key for o in OPTIONS)
            raise ConfigError(f"unknown option {key!r} in profile {path}; known options: {known}")
        value = convert(opt, value, f"profile {path}")
        if opt.kind == "path" and not value.is_absolute():
            # Relative to the profile, so a profile next to its kubeconfig works from anywhere.
            value = (path.parent / value).resolve()
        out[opt.field] = value
    return out


def layered(
    cli: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """(values, sources): each option from the command line, else the environment, else
    the profile; `cli` holds None for options not given on the command line."""
    environ = os.environ if environ is None else environ
    profile_path: Path | None = cli.get("profile")
    if profile_path is None and environ.get("SIGNCHECK_PROFILE"):
        profile_path = Path(environ["SIGNCHECK_PROFILE"]).expanduser()
    profile = load_profile(profile_path) if profile_path else {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for opt in OPTIONS:
        if cli.get(opt.field) is not None:
            values[opt.field] = convert(opt, cli[opt.field], f"command line {opt.cli}")
            sources[opt.field] = f"command line {opt.cli}"
        elif environ.get(opt.env_var) is not None:
            values[opt.field] = convert(opt, environ[opt.env_var], f"environment {opt.env_var}")
            sources[opt.field] = f"environment {opt.env_var}"
        elif opt.field in profile:
            values[opt.field] = profile[opt.field]
            sources[opt.field] = f"profile {profile_path}"
    return values, sources

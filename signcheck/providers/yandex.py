"""`--target yandex --provision`: the seed's infrastructure made for the run and destroyed
after it (`--keep-infra` keeps it).

`terraform/` is applied with the run's id in every resource name (`name_prefix`), the
cluster's credentials are fetched the seed's way (`yc managed-kubernetes cluster
get-credentials`), and the nodes' service account gets an authorized key that feeds
Kyverno's `regcred` (`username=json_key`), exactly as the seed's `helm install` does.
Cloud credentials come only from the environment: the Terraform provider reads `YC_TOKEN`
(or `YC_SERVICE_ACCOUNT_KEY_FILE`); `YC_IAM_TOKEN`, which the seed exports for cosign and
the registry, is handed to it as `YC_TOKEN` when that is not set.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signcheck import redact
from signcheck.errors import ConfigError, ToolError
from signcheck.providers.terraform import Infra, find_terraform
from signcheck.settings.config import Settings

CLOUD_CREDENTIALS = ("YC_TOKEN", "YC_IAM_TOKEN", "YC_SERVICE_ACCOUNT_KEY_FILE")


@dataclass(frozen=True)
class Stand:
    """What the provisioned infrastructure gives the run."""

    outputs: dict[str, Any]
    kubeconfig: Path
    regcred_file: Path | None

    @property
    def registry_host(self) -> str:
        return str(self.outputs["registry"]).split("/", 1)[0]

    def repository_prefix(self, settings: Settings) -> str:
        """`<registry_id>/<prefix>` under the registry host (`cr.yandex/<registry_id>/...`)."""
        return f"{self.outputs['registry_id']}/{settings.registry_prefix}"

    def with_settings(self, settings: Settings) -> Settings:
        if self.regcred_file is None:
            return settings
        return dataclasses.replace(
            settings,
            kyverno_regcred_password_file=self.regcred_file,
            kyverno_regcred_username=settings.kyverno_regcred_username or "json_key",
        )

    def summary(self) -> dict[str, Any]:
        keys = ("cluster_id", "registry_id", "registry", "get_credentials_command")
        return {k: self.outputs.get(k) for k in keys}


def cloud_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    environ = dict(os.environ if environ is None else environ)
    if not any(environ.get(k) for k in CLOUD_CREDENTIALS):
        raise ConfigError(
            "--provision needs Yandex Cloud credentials: export YC_TOKEN=$(yc iam create-token) "
            "(or YC_SERVICE_ACCOUNT_KEY_FILE=<authorized key of a service account>)"
        )
    env = {}
    if not environ.get("YC_TOKEN") and environ.get("YC_IAM_TOKEN"):
        env["YC_TOKEN"] = environ["YC_IAM_TOKEN"]
    redact.register(*(environ.get(k) for k in ("YC_TOKEN", "YC_IAM_TOKEN")))
    return env


def find_yc() -> Path:
    found = shutil.which("yc")
    if not found:
        raise ConfigError(
            "--provision needs the yc CLI on PATH (it fetches the cluster's credentials and "
            "the puller's authorized key): https://yandex.cloud/docs/cli/quickstart"
        )
    return Path(found)


def _yc(yc: Path, args: list[str], what: str, env: dict[str, str]) -> str:
    argv = [str(yc), *args]
    proc = subprocess.run(
        argv, capture_output=True, text=True, env={**os.environ, **env}, timeout=300
    )
    if proc.returncode != 0:
        raise ToolError(
            f"yc could not {what}",
            argv,
            proc.returncode,
            redact.redact(proc.stdout),
            redact.redact(proc.stderr),
        )
    return proc.stdout


def variables(settings: Settings, run_id: str) -> dict[str, Any]:
    values: dict[str, Any] = {
        "folder_id": settings.yc_folder_id,
        # The run id in every resource name: a later run or a person can tell whose it is.
        "name_prefix": f"sc-{run_id}"[:40].rstrip("-"),
    }
    if settings.yc_zone:
        values["zone"] = settings.yc_zone
    if settings.k8s_version:
        values["k8s_version"] = settings.k8s_version
    return values


@contextlib.contextmanager
def provisioned(settings: Settings, run_id: str, run_dir: Path) -> Iterator[Stand]:
    env = cloud_env()
    yc = find_yc()
    infra = Infra(run_dir / "terraform", variables(settings, run_id), binary=find_terraform())
    infra.env = env
    applied = False
    try:
        outputs = infra.apply()
        applied = True
        kubeconfig = run_dir / "kubeconfig"
        _yc(
            yc,
            [
                "managed-kubernetes",
                "cluster",
                "get-credentials",
                "--id",
                str(outputs["cluster_id"]),
                "--external",
                "--force",
                "--kubeconfig",
                str(kubeconfig),
            ],
            "fetch the cluster's credentials",
            env,
        )
        regcred = None
        if not settings.kyverno_regcred_password_file:
            regcred = run_dir / "authorized-key.json"
            _yc(
                yc,
                [
                    "iam",
                    "key",
                    "create",
                    "--service-account-id",
                    str(outputs["nodes_service_account_id"]),
                    "--output",
                    str(regcred),
                ],
                "create the puller's authorized key",
                env,
            )
            regcred.chmod(0o600)
            redact.register(regcred.read_text())
        yield Stand(outputs, kubeconfig, regcred)
    finally:
        # Destroy even after a failed apply: whatever was created before the error is billed.
        if not settings.keep_infra and (applied or (run_dir / "terraform").is_dir()):
            infra.destroy()

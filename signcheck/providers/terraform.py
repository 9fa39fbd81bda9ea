"""The yandex target's infrastructure: `terraform/` applied, read and destroyed.

Any Terraform-compatible binary works: `$SIGNCHECK_TERRAFORM`, then `terraform` or `tofu` on
PATH, then the pinned OpenTofu from the tool cache. Cloud credentials come from the
provider's own environment variables (YC_TOKEN, YC_SERVICE_ACCOUNT_KEY_FILE...), never from
argv, and Terraform's output is kept out of reports because plans can echo variables.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signcheck.errors import ConfigError, ToolError
from signcheck.places import checkout_path
from signcheck.tools import pins


def find_terraform() -> Path:
    if env := os.environ.get("SIGNCHECK_TERRAFORM"):
        return Path(env)
    for name in ("terraform", "tofu"):
        if found := shutil.which(name):
            return Path(found)
    res = pins.resolve("tofu")
    if res.ok and res.path:
        return res.path
    raise ConfigError(
        "no Terraform found: install terraform or OpenTofu, set SIGNCHECK_TERRAFORM, "
        "or run `signcheck tools build tofu`"
    )


@dataclass
class Infra:
    """One working copy of `terraform/` with its own state, under the run's directory."""

    workdir: Path
    variables: dict[str, Any]
    binary: Path = field(default_factory=find_terraform)
    source: Path = field(default_factory=lambda: checkout_path("terraform"))
    env: dict[str, str] = field(default_factory=dict, repr=False)
    """Extra environment for terraform (provider credentials): never argv."""

    def _run(self, args: list[str], what: str) -> str:
        argv = [str(self.binary), *args]
        env = {**os.environ, **self.env, "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}
        proc = subprocess.run(argv, cwd=self.workdir, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise ToolError(
                f"terraform could not {what}", argv, proc.returncode, proc.stdout, proc.stderr
            )
        return proc.stdout

    def prepare(self) -> None:
        if "folder_id" not in self.variables:
            raise ConfigError(
                "the yandex target needs a folder id: pass --yc-folder-id "
                "or set SIGNCHECK_YC_FOLDER_ID"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        for tf in self.source.glob("*.tf"):
            shutil.copy2(tf, self.workdir / tf.name)
        (self.workdir / "signcheck.auto.tfvars.json").write_text(json.dumps(self.variables))

    def apply(self) -> dict[str, Any]:
        self.prepare()
        self._run(["init", "-no-color"], "initialise terraform/ (provider download)")
        self._run(["apply", "-auto-approve", "-no-color"], "create the infrastructure")
        return self.outputs()

    def outputs(self) -> dict[str, Any]:
        raw = json.loads(self._run(["output", "-json"], "read outputs"))
        return {name: item["value"] for name, item in raw.items()}

    def destroy(self) -> None:
        self._run(["destroy", "-auto-approve", "-no-color"], "destroy the infrastructure")

"""Helm, as the seed uses it: install Kyverno with one replica and a `regcred` pull secret.

The chart comes from the pinned Kyverno module (`charts/kyverno`, same version as the
binaries signcheck tests), so installing needs no chart repository; a repository chart and
version can still be named for clusters that must use the published one.

Registry passwords never reach argv (where `ps` shows them): values go through a 0600 file
that is removed after the command.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from signcheck import tools
from signcheck.errors import ToolError

KYVERNO_RELEASE = "kyverno"
KYVERNO_NAMESPACE = "kyverno"


@dataclass(frozen=True)
class RegCred:
    """The seed's `imagePullSecrets.regcred`: registry, username, password."""

    registry: str
    username: str
    password: str = field(repr=False)


def kyverno_values(
    regcred: RegCred | None = None, replicas: int = 1, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The seed's `--set` values, made to work on the current chart.

    The seed sets `replicaCount=1`; Kyverno's chart 3.x no longer reads that key (it is kept
    for fidelity and has no effect) and takes `admissionController.replicas` instead.
    """
    values: dict[str, Any] = {
        "replicaCount": replicas,
        "admissionController": {"replicas": replicas},
    }
    if regcred:
        values["imagePullSecrets"] = {
            "regcred": {
                "registry": regcred.registry,
                "username": regcred.username,
                "password": regcred.password,
            }
        }
    for key, value in (extra or {}).items():
        values[key] = value
    return values


def bundled_chart() -> Path:
    return tools.data_dir("kyverno") / "charts" / "kyverno"


@dataclass
class Helm:
    binary: Path
    kubeconfig: Path | None = None
    context: str | None = None
    timeout: str = "5m"

    @classmethod
    def pinned(cls, kubeconfig: Path | None = None, context: str | None = None) -> Helm:
        return cls(tools.path_of("helm"), kubeconfig, context)

    def _argv(self, args: Sequence[str]) -> list[str]:
        argv = [str(self.binary), *args]
        if self.kubeconfig:
            argv += ["--kubeconfig", str(self.kubeconfig)]
        if self.context:
            argv += ["--kube-context", self.context]
        return argv

    def run(self, args: Sequence[str], what: str) -> str:
        argv = self._argv(args)
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ToolError(
                f"helm could not {what}", argv, proc.returncode, proc.stdout, proc.stderr
            )
        return proc.stdout

    @contextmanager
    def _values_file(self, values: dict[str, Any]) -> Iterator[Path]:
        fd, name = tempfile.mkstemp(prefix="signcheck-values-", suffix=".yaml")
        try:
            with os.fdopen(fd, "w") as fh:
                yaml.safe_dump(values, fh)
            yield Path(name)
        finally:
            Path(name).unlink(missing_ok=True)

    def template(
        self,
        values: dict[str, Any],
        chart: str | Path | None = None,
        release: str = KYVERNO_RELEASE,
        namespace: str = KYVERNO_NAMESPACE,
    ) -> list[dict[str, Any]]:
        """Render the chart offline and return its objects."""
        with self._values_file(values) as vf:
            out = subprocess.run(
                [
                    str(self.binary),
                    "template",
                    release,
                    str(chart or bundled_chart()),
                    "--namespace",
                    namespace,
                    "-f",
                    str(vf),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
        if out.returncode != 0:
            raise ToolError(
                "helm could not render the Kyverno chart",
                ["helm", "template"],
                out.returncode,
                out.stdout,
                out.stderr,
            )
        return [doc for doc in yaml.safe_load_all(out.stdout) if doc]

    def install_kyverno(
        self,
        values: dict[str, Any],
        chart: str | Path | None = None,
        version: str | None = None,
        release: str = KYVERNO_RELEASE,
        namespace: str = KYVERNO_NAMESPACE,
        wait: bool = True,
    ) -> None:
        args = [
            "upgrade",
            "--install",
            release,
            str(chart or bundled_chart()),
            "--namespace",
            namespace,
            "--create-namespace",
            "--timeout",
            self.timeout,
        ]
        if version:
            args += ["--version", version]
        if wait:
            args.append("--wait")
        with self._values_file(values) as vf:
            self.run([*args, "-f", str(vf)], f"install Kyverno (release {release} in {namespace})")

    def uninstall(self, release: str, namespace: str) -> None:
        argv = self._argv(["uninstall", release, "--namespace", namespace, "--wait"])
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0 and "not found" not in proc.stderr:
            raise ToolError(
                f"helm could not uninstall {release}",
                argv,
                proc.returncode,
                proc.stdout,
                proc.stderr,
            )

    def releases(self, namespace: str | None = None) -> list[dict[str, Any]]:
        args = ["list", "--output", "json"]
        args += ["--namespace", namespace] if namespace else ["--all-namespaces"]
        result: list[dict[str, Any]] = json.loads(self.run(args, "list releases") or "[]")
        return result

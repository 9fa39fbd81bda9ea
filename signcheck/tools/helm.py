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
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from signcheck import places
from signcheck.errors import ToolError
from signcheck.tools import pins

KYVERNO_RELEASE = "kyverno"
KYVERNO_NAMESPACE = "kyverno"


@dataclass(frozen=True)
class RegCred:
    """The seed's `imagePullSecrets.regcred`: registry, username, password."""

    registry: str
    username: str
    password: str = field(repr=False)


def seed_kyverno_values(
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


# Remote dependencies of the chart that the module does not vendor. kyverno-api carries
# the policies.kyverno.io CRDs, which the module ships under config/crds; the other two are
# off by default and need the published chart when wanted.
_VENDORED_FROM_CRDS = {"kyverno-api": "policies.kyverno.io"}
_DROPPED = ("openreports", "reports-server")


def bundled_chart() -> Path:
    """The chart of the pinned Kyverno module, made installable offline (prepared once per
    version in the cache; the module's own copy is never modified)."""
    source = pins.data_dir("kyverno") / "charts" / "kyverno"
    version = pins.group("kyverno").version
    dest = places.cache_root() / "charts" / f"kyverno-{version}"
    if (dest / "Chart.yaml").is_file():
        return dest
    staging = Path(tempfile.mkdtemp(prefix=".kyverno-chart-", dir=dest.parent.parent))
    try:
        chart = staging / "kyverno"
        shutil.copytree(source, chart)
        _vendor_dependencies(chart, pins.data_dir("kyverno") / "config" / "crds")
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            chart.rename(dest)
        except OSError:
            if not (dest / "Chart.yaml").is_file():  # not a concurrent run that won
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _vendor_dependencies(chart: Path, crds: Path) -> None:
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    kept = []
    for dep in meta.get("dependencies", []):
        name = dep["name"]
        if name in _DROPPED:
            continue
        if name in _VENDORED_FROM_CRDS:
            sub = chart / "charts" / name
            (sub / "crds").mkdir(parents=True)
            # crds/ is installed as is (never templated): CEL in the schemas contains `{{`.
            for crd in sorted((crds / _VENDORED_FROM_CRDS[name]).glob("*.yaml")):
                shutil.copy2(crd, sub / "crds" / crd.name)
            (sub / "Chart.yaml").write_text(
                yaml.safe_dump(
                    {
                        "apiVersion": "v2",
                        "name": name,
                        "version": dep["version"],
                        "description": "CRDs vendored from the Kyverno module by signcheck",
                    }
                )
            )
            dep = {k: v for k, v in dep.items() if k != "repository"}
        kept.append(dep)
    meta["dependencies"] = kept
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    (chart / "Chart.lock").unlink(missing_ok=True)


def _load_all(text: str) -> list[Any]:
    """Rendered charts are megabytes of CRDs: libyaml reads Kyverno's in 0.4 s, the pure
    Python loader in 4 s."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return list(yaml.load_all(text, Loader=loader))


@dataclass
class Helm:
    binary: Path
    kubeconfig: Path | None = None
    context: str | None = None
    timeout: str = "5m"

    @classmethod
    def pinned(cls, kubeconfig: Path | None = None, context: str | None = None) -> Helm:
        return cls(pins.path_of("helm"), kubeconfig, context)

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
                    # Offline there is no cluster to ask; render for the Kubernetes version
                    # signcheck tests with (Helm's default, 1.20, fails the chart's check).
                    "--kube-version",
                    pins.group("kubernetes").version,
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
        return [doc for doc in _load_all(out.stdout) if doc]

    def install_kyverno(
        self,
        values: dict[str, Any],
        chart: str | Path | None = None,
        version: str | None = None,
        release: str = KYVERNO_RELEASE,
        namespace: str = KYVERNO_NAMESPACE,
        wait: bool = True,
        labels: dict[str, str] | None = None,
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
        if labels:
            # Release labels (Helm >= 3.13): a later run finds the releases of a run.
            args += ["--labels", ",".join(f"{k}={v}" for k, v in labels.items())]
        with self._values_file(values) as vf:
            self.run(
                [*args, "-f", str(vf)],
                f"install {chart or 'Kyverno'} (release {release} in {namespace})",
            )

    def chart_crds(self, chart: str | Path, version: str | None = None) -> list[dict[str, Any]]:
        """The CRDs a chart installs from its `crds/` directories (`helm show crds`): Helm
        creates those that are missing and never deletes them."""
        args = ["show", "crds", str(chart), *(["--version", version] if version else [])]
        docs = _load_all(self.run(args, f"read the CRDs of {chart}"))
        return [
            d for d in docs if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"
        ]

    def manifest(self, release: str, namespace: str) -> list[dict[str, Any]]:
        """The objects the release rendered (`helm get manifest`; not its crds/ files)."""
        out = self.run(["get", "manifest", release, "--namespace", namespace], "read a manifest")
        return [doc for doc in _load_all(out) if isinstance(doc, dict) and doc]

    def uninstall(self, release: str, namespace: str) -> None:
        """Without `--wait`: the caller waits for what the release made to be gone (Helm's
        wait cannot tell a deleted object from one a controller made again; see
        `signcheck.kyverno.install.uninstall`)."""
        argv = self._argv(["uninstall", release, "--namespace", namespace])
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

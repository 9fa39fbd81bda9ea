"""Fixtures for the cluster target's selftests: real local environments (registry with
auth) that the suite is pointed at with `--target cluster`, as it would be at any cluster,
and a runner that executes the conformance suite in a subprocess and reads its reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from kubernetes import client

from signcheck.clients.k8s import Cluster
from signcheck.errors import ToolNotFound
from signcheck.localenv import EnvSpec, LocalEnv
from signcheck.localenv.env import resolve_tools

ROOT = Path(__file__).resolve().parents[2]
# What a cluster-target selftest proves is the target's wiring (settings, preflight, keys,
# Kyverno modes), which the seed scenarios exercise end to end; the whole catalogue would
# multiply each selftest's minutes without testing the target any further.
SEED_TESTS = ("tests/test_seed.py", "tests/test_teardown.py", "tests/test_policy_reporter.py")
"""The seed's scenarios (SEED-01..09): what these selftests run on the cluster target."""


@dataclass
class Outcome:
    returncode: int
    output: str
    summary: dict[str, Any] | None

    @property
    def tests(self) -> list[dict[str, Any]]:
        return list((self.summary or {}).get("tests", []))

    def assert_green(self) -> None:
        """Every seed scenario passed; the optional Policy Reporter step (SEED-09) is
        skipped unless --policy-reporter was given."""
        assert self.returncode == 0, self.output[-4000:]
        by_scenario = {t.get("scenario"): t["outcome"] for t in self.tests}
        expected = {f"SEED-0{i}": "pass" for i in range(1, 9)}
        expected["SEED-09"] = by_scenario.get("SEED-09", "skipped")
        assert by_scenario == expected, self.tests

    def error_lines(self) -> list[str]:
        """Lines that carry an error for the user (pytest.exit's reason, usage errors)."""
        return [
            ln
            for ln in self.output.splitlines()
            if (
                ln.startswith(("! _pytest.outcomes.Exit:", "ERROR:", "signcheck:", "E "))
                # argparse's own "usage:" line only precedes its error line.
                and not ln.startswith("ERROR: usage:")
            )
            or ": error: " in ln
        ]


@dataclass
class ClusterUnderTest:
    """A local environment seen as "some cluster": kubeconfig, registry URL, credentials."""

    env: LocalEnv
    kubeconfig: Path
    registry: str
    username: str
    password: str

    def args(self) -> list[str]:
        return [
            "--target",
            "cluster",
            "--kubeconfig",
            str(self.kubeconfig),
            "--registry",
            self.registry,
            "--registry-username",
            self.username,
        ]

    def run(
        self,
        tmp: Path,
        *extra: str,
        env: dict[str, str] | None = None,
        base: bool = True,
        tests: tuple[str, ...] = SEED_TESTS,
        timeout: float = 600,
    ) -> Outcome:
        reports = tmp / "reports"
        environ = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("SIGNCHECK_")
            or k in ("SIGNCHECK_CACHE", "SIGNCHECK_RUN_DIR", "SIGNCHECK_GO")
        }
        environ.update(
            PYTHONDONTWRITEBYTECODE="1",
            SIGNCHECK_REGISTRY_PASSWORD=self.password,
            # The suite's own tests must not see this session's KUBECONFIG by accident.
            KUBECONFIG=str(tmp / "no-such-kubeconfig"),
        )
        environ.update(env or {})
        argv = [sys.executable, "-m", "pytest", *tests, "-p", "no:cacheprovider", "-q"]
        argv += ["--signcheck-reports", str(reports)]
        argv += [*(self.args() if base else []), *extra]
        proc = subprocess.run(
            argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=environ
        )
        path = reports / "summary.json"
        summary = json.loads(path.read_text()) if path.is_file() else None
        return Outcome(proc.returncode, proc.stdout + proc.stderr, summary)


def _boot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterUnderTest]:
    try:
        resolve_tools()
    except ToolNotFound as err:
        pytest.skip(f"local environment tools not built: {err.message}")
    runs = tmp_path_factory.mktemp("runs")
    with LocalEnv(EnvSpec(runs_root=runs, registry_auth=True)) as env:
        creds = env.info.registry.credentials()
        assert creds is not None
        yield ClusterUnderTest(
            env,
            Path(env.info.kubeconfig),
            env.info.registry.url,
            creds[0],
            creds[1],
        )


@pytest.fixture(scope="session")
def some_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterUnderTest]:
    """One healthy environment for every module here (tests that change the cluster undo
    it; the one that breaks Kyverno has an environment of its own)."""
    yield from _boot(tmp_path_factory)


@contextmanager
def admission_policy(
    kubeconfig: Path, name: str, rule: dict[str, Any], expression: str, message: str
) -> Iterator[None]:
    """A ValidatingAdmissionPolicy of the cluster itself, the kind platform teams write: CEL
    `expression` over the objects `rule` matches, bound with Deny; removed afterwards."""
    adm = client.AdmissionregistrationV1Api(Cluster(kubeconfig).api)
    policy: Any = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{"operations": ["CREATE"], **rule}]},
            "validations": [{"expression": expression, "message": message}],
        },
    }
    binding: Any = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"]},
    }
    # The client takes the plain manifests, as kubectl would send them.
    adm.create_validating_admission_policy(policy)
    adm.create_validating_admission_policy_binding(binding)
    try:
        yield
    finally:
        adm.delete_validating_admission_policy_binding(name)
        adm.delete_validating_admission_policy(name)


@contextmanager
def real_node_env(
    tmp_path_factory: pytest.TempPathFactory, kyverno: Literal["helm", "process"]
) -> Iterator[LocalEnv]:
    """A real-node environment (registry with TLS and credentials), or a skip naming what
    this machine lacks for one."""
    from signcheck.localenv.netns import missing_tools
    from signcheck.localenv.services.containerd import cni_bin_dir, runc_path

    if os.geteuid() != 0 or missing_tools() or runc_path() is None or cni_bin_dir() is None:
        pytest.skip("a real node needs root, runc and the CNI plugins (see the README)")
    spec = EnvSpec(
        runs_root=tmp_path_factory.mktemp("runs"),
        registry_auth=True,
        registry_tls=True,
        node_kind="real",
        kyverno=kyverno,
    )
    try:
        resolve_tools(LocalEnv(spec).required_tools())
    except ToolNotFound as err:
        pytest.skip(f"real-node tools not built: {err.message}")
    with LocalEnv(spec) as env:
        yield env

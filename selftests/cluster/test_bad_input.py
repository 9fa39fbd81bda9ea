"""Bad input on the cluster target: each case is one clear error that names what to fix,
and no test runs. The cluster is a real local environment addressed like any cluster
(kubeconfig, registry URL, credentials); beside the bad cases, the same arguments with
nothing broken run the whole suite green (the positive control). The exit code tells the two
apart: 4 when the input is wrong, 6 when the input is fine but the cluster or registry is not
usable (unreachable, or refusing the run's policy by a rule of its own)."""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from selftests.cluster.conftest import ClusterUnderTest, Outcome, admission_policy
from signcheck.clients.k8s import Cluster
from signcheck.tools import pins

pytestmark = pytest.mark.integration


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


BAD_INPUT, ENVIRONMENT = 4, 6


def assert_one_error(outcome: Outcome, *needles: str, code: int | None = None) -> str:
    """Exactly one error line, naming what to fix; no test ran; nothing passed; where given,
    the exit `code` says whose the fault is (BAD_INPUT or ENVIRONMENT)."""
    assert outcome.returncode not in (0, 5), outcome.output[-3000:]
    if code is not None:
        assert outcome.returncode == code, (outcome.returncode, outcome.output[-3000:])
    errors = outcome.error_lines()
    assert len(errors) == 1, f"expected one error line, got {errors}\n{outcome.output[-3000:]}"
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
    assert outcome.tests == [], outcome.tests
    assert not re.search(r"\b\d+ (passed|failed)\b", outcome.output), outcome.output[-2000:]
    return errors[0]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """Two cosign key pairs made by the pinned cosign with a known password."""
    if not pins.resolve("cosign-v2").ok:
        pytest.skip("cosign-v2 not built")
    cosign = str(pins.path_of("cosign-v2"))
    out: dict[str, Path | str] = {"password": "pw-" + secrets.token_hex(8)}
    for name in ("a", "b"):
        d = tmp_path_factory.mktemp(f"key-{name}")
        subprocess.run(
            [cosign, "generate-key-pair", "--output-key-prefix", "cosign"],
            cwd=d,
            env={**os.environ, "COSIGN_PASSWORD": str(out["password"])},
            check=True,
            capture_output=True,
        )
        out[f"{name}.key"], out[f"{name}.pub"] = d / "cosign.key", d / "cosign.pub"
    return out


# -- the positive control ------------------------------------------------------------


def test_good_input_runs_the_whole_suite_green(
    some_cluster: ClusterUnderTest, keys: dict[str, Path | str], tmp_path: Path
) -> None:
    """The user's own cosign.key and cosign.pub, on an existing Kyverno: all tests pass."""
    outcome = some_cluster.run(
        tmp_path,
        "--signing-key",
        str(keys["a.key"]),
        "--public-key",
        str(keys["a.pub"]),
        env={"COSIGN_PASSWORD": str(keys["password"])},
    )
    assert outcome.returncode == 0, outcome.output[-4000:]
    assert outcome.summary is not None
    outcome.assert_green()
    assert outcome.summary["teardown"]["clean"] is True


# -- settings ------------------------------------------------------------------------


def test_kubeconfig_missing(some_cluster: ClusterUnderTest, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "kubeconfig"
    outcome = some_cluster.run(tmp_path, "--kubeconfig", str(missing))
    assert_one_error(outcome, f"needs a kubeconfig: {missing} does not exist", "--kubeconfig")


def test_wrong_context(some_cluster: ClusterUnderTest, tmp_path: Path) -> None:
    outcome = some_cluster.run(tmp_path, "--context", "staging-eu")
    assert_one_error(outcome, "context 'staging-eu' is not in kubeconfig", "it has: signcheck")


@pytest.mark.parametrize(
    ("how", "needle"),
    [
        ("cli", "argument --kyverno-mode: invalid choice: 'sideways'"),
        ("env", "unknown value 'sideways' for --kyverno-mode (environment SIGNCHECK_KYVERNO_MODE)"),
        ("profile", "unknown value 'sideways' for --kyverno-mode (profile "),
    ],
)
def test_unknown_option_value(
    some_cluster: ClusterUnderTest, tmp_path: Path, how: str, needle: str
) -> None:
    extra: list[str] = []
    env: dict[str, str] = {}
    if how == "cli":
        extra = ["--kyverno-mode", "sideways"]
    elif how == "env":
        env = {"SIGNCHECK_KYVERNO_MODE": "sideways"}
    else:
        profile = tmp_path / "signcheck.toml"
        profile.write_text('kyverno-mode = "sideways"\n')
        extra = ["--profile", str(profile)]
    outcome = some_cluster.run(tmp_path, *extra, env=env)
    assert outcome.returncode == 4
    assert_one_error(outcome, needle)


def test_profile_refuses_a_secret(some_cluster: ClusterUnderTest, tmp_path: Path) -> None:
    profile = tmp_path / "signcheck.toml"
    profile.write_text('registry-password = "hunter2hunter2"\n')
    outcome = some_cluster.run(tmp_path, "--profile", str(profile))
    line = assert_one_error(outcome, "holds a secret", "SIGNCHECK_REGISTRY_PASSWORD")
    assert "hunter2hunter2" not in outcome.output and "hunter2" not in line


# -- the cluster ---------------------------------------------------------------------


def test_cluster_unreachable(some_cluster: ClusterUnderTest, tmp_path: Path) -> None:
    data = yaml.safe_load(some_cluster.kubeconfig.read_text())
    port = closed_port()
    for c in data["clusters"]:
        c["cluster"]["server"] = f"https://127.0.0.1:{port}"
    kc = tmp_path / "kubeconfig"
    kc.write_text(yaml.safe_dump(data))
    outcome = some_cluster.run(tmp_path, "--kubeconfig", str(kc))
    assert_one_error(
        outcome, f"the cluster at https://127.0.0.1:{port} is unreachable", code=ENVIRONMENT
    )


def test_missing_permissions(some_cluster: ClusterUnderTest, tmp_path: Path) -> None:
    """A user who may only read namespaces: the preflight names every missing permission."""
    cluster = Cluster(some_cluster.kubeconfig)
    name = "sc-readonly-" + secrets.token_hex(3)
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    cluster.core.create_namespaced_service_account(
        "default", client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
    )
    try:
        rbac.create_cluster_role(
            client.V1ClusterRole(
                metadata=client.V1ObjectMeta(name=name),
                rules=[
                    client.V1PolicyRule(
                        api_groups=[""], resources=["namespaces"], verbs=["get", "list"]
                    )
                ],
            )
        )
        rbac.create_cluster_role_binding(
            client.V1ClusterRoleBinding(
                metadata=client.V1ObjectMeta(name=name),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=name
                ),
                subjects=[
                    client.RbacV1Subject(kind="ServiceAccount", name=name, namespace="default")
                ],
            )
        )
        token = cluster.core.create_namespaced_service_account_token(
            name,
            "default",
            client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
            ),
        ).status.token
        data = yaml.safe_load(some_cluster.kubeconfig.read_text())
        data["users"] = [{"name": "readonly", "user": {"token": token}}]
        for ctx in data["contexts"]:
            ctx["context"]["user"] = "readonly"
        kc = tmp_path / "kubeconfig"
        kc.write_text(yaml.safe_dump(data))
        outcome = some_cluster.run(tmp_path, "--kubeconfig", str(kc))
        line = assert_one_error(outcome, "may not create namespaces", "create pods")
        assert "list namespaces" not in line, "an allowed permission was reported missing"
        assert "kubectl auth can-i" in line
        assert token not in outcome.output
    finally:
        rbac.delete_cluster_role_binding(name)
        rbac.delete_cluster_role(name)
        cluster.core.delete_namespaced_service_account(name, "default")


def test_policy_the_cluster_rejects(some_cluster: ClusterUnderTest, tmp_path: Path) -> None:
    """A cluster admission rule (a ValidatingAdmissionPolicy) that refuses signcheck's
    ClusterPolicies: the dry run in the preflight meets it, not the first test."""
    name = "sc-no-image-policies-" + secrets.token_hex(3)
    rule = {"apiGroups": ["kyverno.io"], "apiVersions": ["*"], "resources": ["clusterpolicies"]}
    with admission_policy(
        some_cluster.kubeconfig,
        name,
        rule,
        "!object.metadata.name.startsWith('check-image')",
        "image verification policies are managed by the platform",
    ):
        # The apiserver compiles admission policies asynchronously: retry the run briefly.
        for _ in range(10):
            outcome = some_cluster.run(tmp_path)
            if outcome.returncode != 0:
                break
        assert_one_error(
            outcome,
            "the cluster rejects the run's ClusterPolicy check-image-",
            "image verification policies are managed by the platform",
            code=ENVIRONMENT,
        )


# -- the registry --------------------------------------------------------------------


def test_registry_unreachable(some_cluster: ClusterUnderTest, tmp_path: Path) -> None:
    port = closed_port()
    outcome = some_cluster.run(tmp_path, "--registry", f"http://127.0.0.1:{port}")
    assert_one_error(
        outcome, f"registry 127.0.0.1:{port} is unreachable", "check --registry", code=ENVIRONMENT
    )


def test_registry_rejects_the_credentials(some_cluster: ClusterUnderTest, tmp_path: Path) -> None:
    wrong = "wrong-" + secrets.token_hex(8)
    outcome = some_cluster.run(tmp_path, env={"SIGNCHECK_REGISTRY_PASSWORD": wrong})
    assert_one_error(
        outcome, "rejected the credentials", "SIGNCHECK_REGISTRY_PASSWORD", code=BAD_INPUT
    )
    assert wrong not in outcome.output


# -- the signing key -----------------------------------------------------------------


def test_wrong_key_password(
    some_cluster: ClusterUnderTest, keys: dict[str, Path | str], tmp_path: Path
) -> None:
    wrong = "not-" + str(keys["password"])
    outcome = some_cluster.run(
        tmp_path, "--signing-key", str(keys["a.key"]), env={"COSIGN_PASSWORD": wrong}
    )
    assert_one_error(
        outcome, f"the password for --signing-key {keys['a.key']} is wrong", code=BAD_INPUT
    )
    assert wrong not in outcome.output


def test_key_file_missing(some_cluster: ClusterUnderTest, tmp_path: Path) -> None:
    missing = tmp_path / "cosign.key"
    outcome = some_cluster.run(tmp_path, "--signing-key", str(missing))
    assert_one_error(outcome, f"--signing-key {missing} does not exist")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("this is not a key\n", "is not a cosign private key"),
        (
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nbm90IGEga2V5\n"
            "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
            "is malformed: cosign cannot read it",
        ),
    ],
    ids=["not-pem", "broken-pem"],
)
def test_key_file_malformed(
    some_cluster: ClusterUnderTest,
    keys: dict[str, Path | str],
    tmp_path: Path,
    content: str,
    needle: str,
) -> None:
    bad = tmp_path / "cosign.key"
    bad.write_text(content)
    outcome = some_cluster.run(
        tmp_path, "--signing-key", str(bad), env={"COSIGN_PASSWORD": str(keys["password"])}
    )
    assert_one_error(outcome, needle)


def test_public_key_does_not_match(
    some_cluster: ClusterUnderTest, keys: dict[str, Path | str], tmp_path: Path
) -> None:
    outcome = some_cluster.run(
        tmp_path,
        "--signing-key",
        str(keys["a.key"]),
        "--public-key",
        str(keys["b.pub"]),
        env={"COSIGN_PASSWORD": str(keys["password"])},
    )
    assert_one_error(outcome, f"--public-key {keys['b.pub']} does not belong to --signing-key")


# -- tools ---------------------------------------------------------------------------


def test_tool_at_the_wrong_version(some_cluster: ClusterUnderTest, tmp_path: Path) -> None:
    if not pins.resolve("cosign-v3").ok:
        pytest.skip("cosign-v3 not built")
    v3 = pins.path_of("cosign-v3")
    outcome = some_cluster.run(tmp_path, env={"SIGNCHECK_COSIGN_V2": str(v3)})
    assert_one_error(outcome, "cosign-v2 v2.6.5 is not available", "reports v3.1.3")


def test_tool_missing(some_cluster: ClusterUnderTest, tmp_path: Path) -> None:
    missing = tmp_path / "bin" / "helm"
    outcome = some_cluster.run(
        tmp_path, "--kyverno-mode", "install", env={"SIGNCHECK_HELM": str(missing)}
    )
    assert_one_error(outcome, "helm v3.21.4 is not available", f"SIGNCHECK_HELM={missing}")

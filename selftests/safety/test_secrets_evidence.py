"""Secrets never leave the process, and a failing test carries its evidence.

One real run of the suite on the local target, made to fail on purpose (the policy holds the
other key, so SEED-04..07 fail), with known secrets planted in its environment (registry
password, COSIGN_PASSWORD, YC tokens, a Yandex authorized key file) and the run's own secrets
noted as they are made (the random cosign key passwords, by `spy_secrets`; the private keys,
read from the kept run directory). Every output is then searched for every secret, in plain
and base64 form: report.html (with its embedded extras decoded), junit.xml, summary.json, the
terminal, the run directory and the services' logs. A second run against an `env up`
environment whose registry requires a password does the same for a password the registry
really checks. The run is kept (`--keep`) so its logs can be read, then removed with
`signcheck cleanup --run`, which is checked too.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from selftests.safety import leaks
from selftests.safety.conftest import EnvFactory
from selftests.safety.harness import Dirs, SuiteRun, local_leftovers, signcheck_cli

pytestmark = [pytest.mark.integration]


def _planted(tmp: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(environment to set, secrets to look for)."""
    token = secrets.token_hex(12)
    key_body = secrets.token_hex(40)
    authorized_key = tmp / "authorized_key.json"
    pem = f"-----BEGIN PRIVATE KEY-----\n{key_body}\n-----END PRIVATE KEY-----\n"
    authorized_key.write_text(
        json.dumps({"id": f"aje-planted-{token}", "service_account_id": "aje", "private_key": pem})
    )
    env = {
        "COSIGN_PASSWORD": f"planted-cosign-{token}",
        "YC_IAM_TOKEN": f"t1.planted-iam-{token}",
        "YC_OAUTH_TOKEN": f"y0_planted-oauth-{token}",
        "SIGNCHECK_REGISTRY_PASSWORD": f"planted-registry-{token}",
        "YC_SERVICE_ACCOUNT_KEY_FILE": str(authorized_key),
    }
    look_for = {k: v for k, v in env.items() if k != "YC_SERVICE_ACCOUNT_KEY_FILE"}
    look_for["authorized key (private key)"] = key_body
    return env, look_for


def _private_key_bodies(run_dir: Path) -> dict[str, Path]:
    """The base64 body of each private key the run made, and its file."""
    found = {}
    for key in sorted((run_dir / "keys").rglob("*.key")):
        lines = key.read_text().strip().splitlines()
        body = "".join(ln for ln in lines if not ln.startswith("-----"))
        # The head is the same for every cosign key (its KDF parameters): take the tail.
        found[body[-80:-16]] = key
    return found


def _credential_stores(run_dir: Path) -> list[Path]:
    """cosign's private DOCKER_CONFIG files: where the registry password is handed to cosign
    on purpose (kept here only because of --keep). Not outputs, but private to the user."""
    stores = sorted(run_dir.glob("cosign*/docker/config.json"))
    for store in stores:
        assert store.stat().st_mode & 0o077 == 0, f"{store} is readable by others"
    return stores


def _outputs(run: SuiteRun, key_files: list[Path], env_logs: Path | None) -> dict[str, str]:
    texts = leaks.html_texts((run.reports / "report.html").read_text())
    for name in ("junit.xml", "summary.json", "terminal.txt"):
        texts[name] = (run.reports / name).read_text()
    texts |= leaks.files_under(run.run_dir, skip=key_files + _credential_stores(run.run_dir))
    if env_logs is not None:
        texts |= leaks.files_under(env_logs)
    return texts


@dataclass
class FailingRun:
    run: SuiteRun
    texts: dict[str, str]
    secrets: dict[str, str]


@pytest.fixture(scope="module")
def failing_run(
    tmp_path_factory: pytest.TempPathFactory, _tools_built: None
) -> Iterator[FailingRun]:
    base = tmp_path_factory.mktemp("failing-run")
    dirs = Dirs.under(base)
    env, look_for = _planted(base)
    spied = base / "spied.txt"
    run = SuiteRun.start(
        dirs,
        base / "reports",
        "--signcheck-sabotage",
        "other-key",
        "--keep",
        "-p",
        "selftests.safety.spy_secrets",
        env=dirs.environ(**env, SIGNCHECK_SPY_SECRETS=str(spied)),
    )
    run.wait_run_id()
    assert run.wait(300) == 1, run.output[-3000:]
    passwords = spied.read_text().split()
    keys = _private_key_bodies(run.run_dir)
    # One key pair per signing role (main, other, third): each password and each private
    # key is searched for, so the spy must have seen every pair the run made.
    roles = sorted(d.name for d in (run.run_dir / "keys").iterdir() if d.is_dir())
    assert len(roles) >= 2, roles
    assert len(passwords) == len(roles) == len(keys), (passwords, roles, keys)
    look_for |= {f"cosign key password {i}": p for i, p in enumerate(passwords)}
    look_for |= {f"private key {p.parent.name}": body for body, p in keys.items()}
    texts = _outputs(run, list(keys.values()), run.env_dir / "logs")
    yield FailingRun(run, texts, look_for)
    done = signcheck_cli(dirs, "cleanup", "--run", run.run_id, "--runs-dir", str(dirs.suite))
    assert done.returncode == 0, done.stdout + done.stderr
    assert local_leftovers(run) == {}


def test_no_secret_in_any_output(failing_run: FailingRun) -> None:
    texts = failing_run.texts
    # The search reaches into everything it claims to: the embedded extras were decoded,
    # and the services' logs are there.
    assert leaks.embedded_count(texts) >= 4, list(texts)
    assert any(k.endswith("kyverno.log") for k in texts) and any(
        k.endswith("kube-apiserver.log") for k in texts
    ), list(texts)
    assert leaks.find(texts, failing_run.secrets) == []


def test_search_finds_a_planted_leak(failing_run: FailingRun) -> None:
    # Control: the same search over the same outputs finds a secret that is there.
    texts = dict(failing_run.texts)
    secret = failing_run.secrets["YC_IAM_TOKEN"]
    import base64

    texts["report.html (embedded #99)"] = base64.b64encode(secret.encode()).decode()
    texts["summary.json"] += secret
    found = leaks.find(texts, {"YC_IAM_TOKEN": secret})
    assert "YC_IAM_TOKEN (plain) in summary.json" in found
    assert "YC_IAM_TOKEN (base64) in report.html (embedded #99)" in found


def _evidence_of(texts: dict[str, str], namespace_suffix: str) -> str:
    """The decoded evidence extra of the test whose namespace ends with the suffix."""
    for name, text in texts.items():
        head = text.split("events in namespace", 1)[-1][:120]
        if "(embedded #" in name and "events in namespace" in text and namespace_suffix in head:
            return text
    raise AssertionError(f"no evidence for *{namespace_suffix} in the HTML report")


def test_failing_test_carries_its_evidence(failing_run: FailingRun) -> None:
    run = failing_run.run
    summary = run.summary()
    outcome = {t["scenario"]: t["outcome"] for t in summary["tests"]}
    # The canary meets the wrong key first: it names the cause, and the admission scenarios
    # behind it are not judged.
    assert outcome["CANARY-01"] == "environment", summary["tests"]
    assert {outcome[s] for s in ("SEED-05", "SEED-06", "SEED-07")} == {"environment"}
    evidence = _evidence_of(failing_run.texts, "-canary")
    # The admission response: the signed canary pod denied, and why.
    assert "admission responses:" in evidence
    assert "DENIED" in evidence and "webhook: mutate.kyverno.svc-fail" in evidence
    assert "no matching signatures" in evidence
    # The events of its namespace (a section even when there are none).
    assert "events in namespace sc-" in evidence
    # The policy's status.
    assert "policy check-image status:" in evidence and '"type": "Ready"' in evidence
    # The Kyverno log lines about this test's requests.
    log = evidence.split("Kyverno log:", 1)[1]
    assert "(lines mentioning sc-" in log and "failed to verify image" in log, log[:2000]
    # Kyverno's webhook configurations.
    assert "mutate.kyverno.svc-fail: failurePolicy=Fail" in evidence
    # The terminal shows the same evidence section.
    assert "signcheck evidence" in run.output and "policy check-image status:" in run.output


def test_registry_password_never_leaves(tmp_path: Path, env_up: EnvFactory) -> None:
    remote = env_up("--registry-auth")
    password, username = remote.registry.password, remote.registry.username
    assert password and username
    dirs = Dirs.under(tmp_path)
    env, look_for = _planted(tmp_path)
    env["SIGNCHECK_REGISTRY_PASSWORD"] = password
    look_for["SIGNCHECK_REGISTRY_PASSWORD"] = password
    run = SuiteRun.start(
        dirs,
        tmp_path / "reports",
        *remote.target_args(),
        "--signcheck-sabotage",
        "other-key",
        "--keep",
        env=dirs.environ(**env),
    )
    run.wait_run_id()
    assert run.wait(300) == 1, run.output[-3000:]
    # The password was really used: images were pushed and signed behind it.
    assert run.summary()["phases"].get("signing", 0) > 0, run.summary()["phases"]
    keys = _private_key_bodies(run.run_dir)
    look_for |= {f"private key {p.parent.name}": body for body, p in keys.items()}
    texts = _outputs(run, list(keys.values()), remote.env_dir / "logs")
    assert leaks.find(texts, look_for, username=username) == []
    args = ("cleanup", "--run", run.run_id, "--runs-dir", str(dirs.suite))
    # Passwords never reach the run directory: without one the cleanup says what it needs.
    refused = signcheck_cli(dirs, *args)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "export SIGNCHECK_REGISTRY_PASSWORD" in refused.stdout
    done = signcheck_cli(dirs, *args, env=dirs.environ(SIGNCHECK_REGISTRY_PASSWORD=password))
    assert done.returncode == 0, done.stdout + done.stderr
    assert remote.leftovers(run.run_id) == {}

"""KMS signing as the seed does it, end to end against a real KMS on loopback: the run
creates the key in the KMS (`cosign generate-key-pair --kms`), signs with the reference
(`cosign sign --key <ref> --tlog-upload=false`), verifies with it (`cosign verify --key
<ref> --insecure-ignore-tlog`), and Kyverno admits the signed pod and denies the rest.

The KMS is local-kms, a stand-in for AWS KMS that really generates keys and signs, reached
through cosign's `awskms://` provider; `yckms://` differs only in the reference and the
credentials (YC_IAM_TOKEN), and those are checked here too, short of the cloud itself."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from selftests.cluster.conftest import ClusterUnderTest
from selftests.cluster.test_bad_input import assert_one_error, closed_port
from signcheck.localenv.services.localkms import LocalKms
from signcheck.places import suite_runs
from signcheck.tools import pins

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def local_kms(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    for name in ("local-kms", "cosign-v2"):
        if not pins.resolve(name).ok:
            pytest.skip(f"{name} not built (signcheck tools build {name})")
    with LocalKms(tmp_path_factory.mktemp("kms")) as lk:
        yield lk


def test_kms_key_generate_sign_verify_admit(
    some_cluster: ClusterUnderTest, local_kms: LocalKms, tmp_path: Path
) -> None:
    key = local_kms.key("signcheck-" + secrets.token_hex(4))
    outcome = some_cluster.run(
        tmp_path, "--signing-key", key.ref, "--kms-generate", "--keep", env=key.env
    )
    run_dir = suite_runs() / str((outcome.summary or {}).get("run_id"))
    try:
        assert outcome.returncode == 0, outcome.output[-4000:]
        outcome.assert_green()
        keys = run_dir / "keys" / "main"
        assert (keys / "main.kms").read_text().strip() == key.ref
        assert not list(keys.glob("*.key")), "a KMS key never leaves the KMS"
        # The policy's key (SEED-04 compares it with this file) is the KMS key's public half.
        cosign = str(pins.path_of("cosign-v2"))
        pub = subprocess.run(
            [cosign, "public-key", "--key", key.ref],
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **key.env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert pub.returncode == 0, pub.stderr
        assert pub.stdout.strip() == (keys / "main.pub").read_text().strip()
        for secret in key.env.values():
            if len(secret) > 8 and "/" not in secret:
                assert secret not in outcome.output
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def test_kms_unreachable(
    some_cluster: ClusterUnderTest, local_kms: LocalKms, tmp_path: Path
) -> None:
    key = local_kms.key("signcheck-unused")
    port = closed_port()
    ref = f"awskms://127.0.0.1:{port}/alias/signcheck-unused"
    outcome = some_cluster.run(tmp_path, "--signing-key", ref, env=key.env)
    assert_one_error(outcome, f"cosign cannot use the KMS key {ref}")


def test_yckms_without_credentials(some_cluster: ClusterUnderTest, tmp_path: Path) -> None:
    ref = "yckms:///abcdefghij0123456789"
    outcome = some_cluster.run(tmp_path, "--signing-key", ref, env={"YC_IAM_TOKEN": ""})
    assert_one_error(outcome, f"--signing-key {ref} needs yckms credentials", "YC_IAM_TOKEN")


def test_yckms_with_a_cosign_that_lacks_the_provider(
    some_cluster: ClusterUnderTest, tmp_path: Path
) -> None:
    """Stock cosign has no yckms provider: the error says what to install."""
    ref = "yckms:///abcdefghij0123456789"
    token = "t1." + secrets.token_hex(16)
    outcome = some_cluster.run(tmp_path, "--signing-key", ref, env={"YC_IAM_TOKEN": token})
    assert_one_error(outcome, "has no yckms provider", "sigstore-kms-yckms")
    assert token not in outcome.output

"""The local KMS stand-in really creates keys cosign can use through awskms://."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from signcheck.localenv.services.localkms import LocalKms
from signcheck.tools import pins

pytestmark = pytest.mark.integration


def test_cosign_creates_a_key_in_the_local_kms_and_reads_its_public_key(tmp_path: Path) -> None:
    for name in ("local-kms", "cosign-v2"):
        if not pins.resolve(name).ok:
            pytest.skip(f"{name} not built (signcheck tools build {name})")
    cosign = str(pins.path_of("cosign-v2"))
    with LocalKms(tmp_path) as lk:
        key = lk.key("signcheck-selftest")
        env = {**os.environ, **key.env}
        gen = subprocess.run(
            [cosign, "generate-key-pair", "--kms", key.create_ref],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert gen.returncode == 0, gen.stderr
        pub = subprocess.run(
            [cosign, "public-key", "--key", key.ref],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert pub.returncode == 0, pub.stderr
        assert pub.stdout == (tmp_path / "cosign.pub").read_text()
        assert not (tmp_path / "cosign.key").exists(), "a KMS key never leaves the KMS"
    assert lk.processes and not any(p.alive for p in lk.processes)

"""The seed's infrastructure as Terraform, checked without a cloud or provider download.

Parsed with python-hcl2 (a real HCL parser), and `tofu fmt -check` with the pinned OpenTofu.
Provider schema validation (`tofu validate`) needs the yandex-cloud/yandex provider, which
this machine can neither download (no route to registry.opentofu.org) nor build (the module
proxy does not serve its Go module), so it is the README's first step with a cloud folder.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

hcl2 = pytest.importorskip("hcl2")

TF_DIR = Path(__file__).resolve().parent.parent / "terraform"


def _unquote(value: str) -> str:
    return value.strip('"')


def _load() -> dict[str, list[dict[str, Any]]]:
    merged: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(TF_DIR.glob("*.tf")):
        with path.open() as fh:
            for key, blocks in hcl2.load(fh).items():
                if not key.startswith("__"):
                    merged.setdefault(key, []).extend(blocks)
    return merged


def _resources() -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for block in _load().get("resource", []):
        for rtype, named in block.items():
            for name, body in named.items():
                out.append((_unquote(rtype), _unquote(name), body))
    return out


def test_has_the_seed_resources() -> None:
    kinds = Counter(rtype for rtype, _, _ in _resources())
    for needed in (
        "yandex_vpc_network",
        "yandex_vpc_subnet",
        "yandex_vpc_security_group",
        "yandex_kubernetes_cluster",
        "yandex_kubernetes_node_group",
        "yandex_container_registry",
    ):
        assert kinds[needed] == 1, needed
    assert kinds["yandex_iam_service_account"] == 2


def test_roles_are_granted_by_non_authoritative_members() -> None:
    roles = {
        _unquote(body["role"])
        for rtype, _, body in _resources()
        if rtype == "yandex_resourcemanager_folder_iam_member"
    }
    assert roles == {"k8s.clusters.agent", "vpc.publicAdmin", "container-registry.images.puller"}
    authoritative = [
        rtype for rtype, _, _ in _resources() if rtype.endswith(("_iam_binding", "_iam_policy"))
    ]
    assert authoritative == [], "authoritative bindings would strip others' access"


def test_versions_and_folder_are_variables() -> None:
    variables = {_unquote(k) for block in _load()["variable"] for k in block}
    assert {"folder_id", "k8s_version", "zone", "api_allowed_cidrs"} <= variables
    for rtype, _, body in _resources():
        if rtype == "yandex_kubernetes_cluster":
            assert "var.k8s_version" in str(body["master"])
        if rtype == "yandex_kubernetes_node_group":
            assert "var.k8s_version" in body["version"]
    assert "1.22" not in "".join(p.read_text() for p in TF_DIR.glob("*.tf"))


def test_outputs_name_cluster_registry_and_credentials_command() -> None:
    outputs = {_unquote(k) for block in _load()["output"] for k in block}
    assert {"cluster_id", "registry_id", "registry", "get_credentials_command"} <= outputs


def test_security_group_opens_the_api_only_to_the_allowed_cidrs() -> None:
    (group,) = [b for t, _, b in _resources() if t == "yandex_vpc_security_group"]
    api_rules = [r for r in group["ingress"] if r.get("port") in (443, 6443)]
    assert len(api_rules) == 2
    assert all(r["v4_cidr_blocks"] == "${var.api_allowed_cidrs}" for r in api_rules)


def _tofu() -> str:
    from signcheck.tools import pins

    res = pins.resolve("tofu")
    if res.ok and res.path:
        return str(res.path)
    found = shutil.which("tofu") or shutil.which("terraform")
    if not found:
        pytest.skip("no OpenTofu: signcheck tools build tofu")
    return found


def test_formatted(tmp_path: Path) -> None:
    # A CLI config of its own: a user's (or CI's) ~/.terraformrc plays no part in fmt.
    rc = tmp_path / "tofurc"
    rc.write_text("")
    proc = subprocess.run(
        [_tofu(), "fmt", "-check", "-diff", "-recursive", str(TF_DIR)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TF_CLI_CONFIG_FILE": str(rc)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_fmt_check_notices_a_badly_formatted_file(tmp_path: Path) -> None:
    """Control: the same check fails on a file that is not formatted."""
    (tmp_path / "bad.tf").write_text('variable "x" {\ntype=string\n}\n')
    rc = tmp_path / "tofurc"
    rc.write_text("")
    proc = subprocess.run(
        [_tofu(), "fmt", "-check", str(tmp_path)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TF_CLI_CONFIG_FILE": str(rc)},
    )
    assert proc.returncode != 0 and "bad.tf" in proc.stdout

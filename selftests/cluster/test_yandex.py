"""`--target yandex --provision` wiring: terraform apply, the seed's credential steps, the
suite, terraform destroy (or not, with --keep-infra).

Yandex Cloud cannot be reached from here, so the two commands that talk to it are TEST
DOUBLES, named as such: `FakeTerraform` (answers init/apply/output/destroy and logs its
calls) and `FakeYc` (get-credentials hands out the local environment's kubeconfig; iam key
create writes a dummy authorized key). Everything after them is real: the preflight, the
suite, Kyverno, cosign, the registry. The Terraform configuration itself is checked by
selftests/test_terraform.py; the cloud run is the README's Yandex section."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from selftests.cluster.conftest import ClusterUnderTest
from selftests.cluster.test_bad_input import assert_one_error

pytestmark = pytest.mark.integration


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/usr/bin/env bash\nset -euo pipefail\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def fakes(tmp: Path, cluster: ClusterUnderTest) -> tuple[Path, Path, Path]:
    """(FakeTerraform, directory holding FakeYc, call log)."""
    log = tmp / "calls.log"
    host = cluster.registry.removeprefix("http://")
    outputs = {
        name: {"value": value}
        for name, value in {
            "cluster_id": "catfakecluster000001",
            "registry_id": "crpfakeregistry00001",
            "registry": f"{host}/crpfakeregistry00001",
            "nodes_service_account_id": "ajefakenodes00000001",
            "get_credentials_command": "yc managed-kubernetes cluster get-credentials ...",
        }.items()
    }
    terraform = _script(
        tmp / "FakeTerraform",
        f"""echo "terraform $1 $(cat signcheck.auto.tfvars.json 2>/dev/null)" >> {log}
case "$1" in
  init|apply|destroy) ;;
  output) echo '{json.dumps(outputs)}' ;;
  *) echo "FakeTerraform: unexpected $*" >&2; exit 9 ;;
esac
""",
    )
    _script(
        tmp / "fakebin" / "yc",
        f"""echo "yc $*" >> {log}
out=""
prev=""
for a in "$@"; do
  if [ "$prev" = "--kubeconfig" ] || [ "$prev" = "--output" ]; then out="$a"; fi
  prev="$a"
done
case "$1 $2" in
  "managed-kubernetes cluster") cp {cluster.kubeconfig} "$out" ;;
  "iam key") echo '{{"id":"ajekey","private_key":"FAKE"}}' > "$out" ;;
  *) echo "FakeYc: unexpected $*" >&2; exit 9 ;;
esac
""",
    )
    return terraform, tmp / "fakebin", log


@pytest.mark.parametrize("keep_infra", [False, True], ids=["destroy", "keep-infra"])
def test_provision_runs_the_suite_then_destroys(
    some_cluster: ClusterUnderTest, tmp_path: Path, keep_infra: bool
) -> None:
    terraform, fakebin, log = fakes(tmp_path, some_cluster)
    args = [
        "--target",
        "yandex",
        "--provision",
        "--yc-folder-id",
        "b1gfakefolder0000001",
        "--registry-scheme",
        "http",
        "--registry-username",
        some_cluster.username,
    ]
    if keep_infra:
        args.append("--keep-infra")
    outcome = some_cluster.run(
        tmp_path,
        *args,
        base=False,
        env={
            "SIGNCHECK_TERRAFORM": str(terraform),
            "PATH": f"{fakebin}:{os.environ['PATH']}",
            "YC_TOKEN": "t1.fake-token-for-the-fakes",
        },
    )
    assert outcome.returncode == 0, outcome.output[-4000:]
    outcome.assert_green()
    calls = log.read_text().splitlines()
    kinds = [c.split(" ", 2)[0] + " " + c.split(" ", 2)[1] for c in calls]
    expected = [
        "terraform init",
        "terraform apply",
        "terraform output",
        "yc managed-kubernetes",
        "yc iam",
    ]
    assert kinds[:5] == expected, calls
    assert kinds[5:] == ([] if keep_infra else ["terraform destroy"]), calls
    tfvars = json.loads(calls[1].split(" ", 2)[2])
    assert tfvars["folder_id"] == "b1gfakefolder0000001"
    assert tfvars["name_prefix"] == f"sc-{outcome.summary['run_id']}"  # type: ignore[index]
    assert "--external" in calls[3]


def test_provision_needs_cloud_credentials(some_cluster: ClusterUnderTest, tmp_path: Path) -> None:
    terraform, _fakebin, log = fakes(tmp_path, some_cluster)
    outcome = some_cluster.run(
        tmp_path,
        "--target",
        "yandex",
        "--provision",
        "--yc-folder-id",
        "b1gfakefolder0000001",
        base=False,
        env={"SIGNCHECK_TERRAFORM": str(terraform), "YC_TOKEN": "", "YC_IAM_TOKEN": ""},
    )
    assert_one_error(outcome, "--provision needs Yandex Cloud credentials", "YC_TOKEN")
    assert not log.exists(), "nothing may be applied without credentials"

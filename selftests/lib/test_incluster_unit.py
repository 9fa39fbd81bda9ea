"""The in-cluster run's parts that need no cluster: the Job's objects and permissions, the
entrypoint's Sonobuoy contract (results archive, `done` file, the pod's kubeconfig), the
results read back from a pod's log, and the committed Sonobuoy plugin definition. The Job
itself on a real node is `selftests/cluster/test_incluster_job.py`."""

from __future__ import annotations

import base64
import json
import tarfile
from pathlib import Path

import pytest
import yaml

from signcheck import redact
from signcheck.incluster import entrypoint, job, run
from signcheck.providers.permissions import RUN_PERMISSIONS, rules
from signcheck.target import RUN_LABEL, Registry

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "registry-password-in-a-secret-only"


def _spec(tmp_path: Path, **extra: object) -> job.JobSpec:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    registry = Registry("127.0.0.1:5000", "https", ca, "signcheck", PASSWORD)
    return job.JobSpec(
        run_id="20261208-000000-abcdef",
        namespace="sc-abcdef-incluster",
        image="127.0.0.1:5000/signcheck/signcheck-suite@sha256:" + "0" * 64,
        registry=registry,
        pytest_args=("-k", "SEED"),
        **extra,  # type: ignore[arg-type]
    )


def test_every_object_carries_the_run_id_and_the_password_only_in_secrets(
    tmp_path: Path,
) -> None:
    objects = job.manifests(_spec(tmp_path, host_network=True))
    kinds = [o["kind"] for o in objects]
    assert kinds[0] == "Namespace" and kinds[-1] == "Job"
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap"} <= set(kinds)
    for obj in objects:
        assert obj["metadata"]["labels"][RUN_LABEL] == "20261208-000000-abcdef"  # type: ignore[index]
        if obj["kind"] != "Secret":
            assert PASSWORD not in json.dumps(obj)
    pod = objects[-1]["spec"]["template"]["spec"]  # type: ignore[index]
    assert pod["hostNetwork"] is True and pod["imagePullSecrets"] == [{"name": "signcheck-pull"}]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["SIGNCHECK_REGISTRY_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == (
        "signcheck-registry"
    )
    assert env["SIGNCHECK_REGISTRY_CA"]["value"] == job.CA_PATH
    assert env["SIGNCHECK_REGISTRY_PREFIX"]["value"] == "signcheck"
    assert pod["containers"][0]["args"] == ["-k", "SEED"]
    assert objects[-1]["spec"]["backoffLimit"] == 0  # type: ignore[index]


def test_a_registry_path_stays_in_the_prefix_inside(tmp_path: Path) -> None:
    """`--registry cr.yandex/crp123`: the run inside pushes under crp123/signcheck too."""
    registry = Registry("cr.yandex", "https", repository_prefix="crp123/signcheck")
    env = {e["name"]: e.get("value") for e in job.registry_env(registry)}
    assert env["SIGNCHECK_REGISTRY_URL"] == "cr.yandex"
    assert env["SIGNCHECK_REGISTRY_PREFIX"] == "crp123/signcheck"


def test_the_role_grants_what_the_preflight_checks() -> None:
    granted = {
        (verb, rule["apiGroups"][0], rule["resources"][0])
        for rule in rules()
        for verb in rule["verbs"]  # type: ignore[attr-defined]
    }
    assert set(RUN_PERMISSIONS) == granted
    # Nothing beyond what a run does: no wildcard, no reading a Secret's value by name
    # outside what the run made, no RBAC beyond namespaced bindings.
    assert not any("*" in json.dumps(rule) for rule in rules())
    assert ("create", "rbac.authorization.k8s.io", "clusterrolebindings") not in granted


def test_entrypoint_packs_results_and_writes_done(tmp_path: Path) -> None:
    reports = tmp_path / "results" / "signcheck"
    reports.mkdir(parents=True)
    for name in ("junit.xml", "summary.json", "report.html"):
        (reports / name).write_text(name)
    archive = entrypoint.pack(reports, tmp_path / "results")
    assert (tmp_path / "results" / "done").read_text() == str(archive)
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["junit.xml", "report.html", "summary.json"]


def test_pod_kubeconfig_names_the_token_by_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "namespace").write_text("sc-abcdef-incluster")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    path = entrypoint.pod_kubeconfig(tmp_path / "kc", sa)
    cfg = yaml.safe_load(path.read_text())
    assert cfg["clusters"][0]["cluster"]["server"] == "https://10.96.0.1:443"
    assert cfg["users"][0]["user"] == {"tokenFile": str(sa / "token")}
    assert path.stat().st_mode & 0o077 == 0


def test_results_read_back_from_the_log(tmp_path: Path) -> None:
    redact.register(PASSWORD)
    reports = tmp_path / "r" / "signcheck"
    reports.mkdir(parents=True)
    (reports / "summary.json").write_text(json.dumps({"verdict": {"sentence": "enforced"}}))
    archive = entrypoint.pack(reports, tmp_path / "r")
    encoded = base64.encodebytes(archive.read_bytes()).decode()
    log = (
        f"collected 10 items\npassword {PASSWORD}\n\n{entrypoint.BEGIN}\n{encoded}"
        f"{entrypoint.END}\n{entrypoint.EXIT_PREFIX}0\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    outcome = run._unpack(log, out)
    assert outcome.exit_code == 0 and outcome.problem is None
    assert run.summary_sentence(out) == "enforced"
    kept = (out / "pytest.log").read_text()
    assert "collected 10 items" in kept and entrypoint.BEGIN not in kept
    assert PASSWORD not in kept
    missing = run._unpack("pod died\n", out)
    assert missing.problem and missing.exit_code is None


def test_committed_sonobuoy_plugin_is_the_rendered_one() -> None:
    rendered = job.sonobuoy_plugin(
        job.PLUGIN_IMAGE_PLACEHOLDER, Registry("REGISTRY", "https"), ("-k", "SEED")
    )
    assert (ROOT / "signcheck-plugin.yaml").read_text().strip() == rendered.strip()
    plugin = yaml.safe_load(rendered)
    assert plugin["sonobuoy-config"]["result-format"] == "junit"
    assert plugin["spec"]["volumeMounts"] == [
        {"name": "results", "mountPath": "/tmp/sonobuoy/results"}
    ]

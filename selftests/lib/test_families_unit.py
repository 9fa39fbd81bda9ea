"""The IDX, PULL and EXC scenarios' helpers: image indexes pushed to a real registry and read
back as a node reads them, where Kyverno takes PolicyExceptions from (its Deployment's flags,
as the chart renders them), and a pod's pull secret."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from signcheck.artefacts import indexes
from signcheck.clients import oci, ociimage, pullsecret
from signcheck.clients.admission import parse_denial
from signcheck.kyverno import exceptions
from signcheck.localenv import incluster
from signcheck.target import Registry, Target


@pytest.mark.integration
def test_index_pushed_and_read_back(registry: Registry, run_id: str) -> None:
    client = oci.OciClient(registry)
    spec = indexes.BY_ROLE["idx-index-signed"]
    pushed = indexes.push_index(client, spec, registry.repository(run_id, spec.role), run_id)
    index = pushed[spec.role]
    assert client.resolve(index.repository, run_id) == index.digest
    stored = indexes.read_index(client, index.repository, index.digest)
    for platform in spec.platforms:
        child = pushed[indexes.child_key(spec.role, platform)]
        assert stored.child_for(platform) == child.digest
        config = json.loads(client.blob(child.repository, child.config_digest))
        assert f"{config['os']}/{config['architecture']}" == platform
    raw, media_type, _ = client.manifest(index.repository, index.digest)
    assert media_type == ociimage.INDEX_OCI and json.loads(raw)["mediaType"] == media_type


def test_what_is_signed() -> None:
    # The index itself where it is signed at the index, every child where it is not.
    assert "idx-index-signed" in indexes.SIGNED
    assert "idx-children-signed" not in indexes.SIGNED
    assert indexes.child_key("idx-children-signed", "linux/arm64") in indexes.SIGNED


class _Deployments:
    def __init__(self, args: list[str] | None) -> None:
        self.args = args

    def deployments(self, namespace: str, label_selector: str | None = None) -> list[Any]:
        if self.args is None:
            return []
        container = {"name": "kyverno", "args": self.args}
        return [{"spec": {"template": {"spec": {"containers": [container]}}}}]


def _target(extra: dict[str, Any] | None = None) -> Target:
    return Target(
        name="cluster",
        run_id="20260101-000000-abcdef",
        run_dir=Path("/nonexistent"),
        kubeconfig=Path("/nonexistent"),
        registry=Registry("127.0.0.1:5000"),
        extra=extra or {},
    )


@pytest.mark.parametrize(
    ("args", "namespace", "why"),
    [
        (["--enablePolicyException=true", "--exceptionNamespace=team-x"], "team-x", ""),
        (["--enablePolicyException=true", "--exceptionNamespace=*"], "*", ""),
        (["--enablePolicyException=false", "--exceptionNamespace=x"], None, "disabled"),
        ([], None, "disabled"),
        (["--enablePolicyException=true"], None, "--exceptionNamespace is empty"),
        (None, None, "is not known"),
    ],
)
def test_exception_settings_from_flags(
    args: list[str] | None, namespace: str | None, why: str
) -> None:
    found = exceptions.settings(_Deployments(args), _target())  # type: ignore[arg-type]
    assert found.namespace == namespace
    assert why in found.why_not


def test_exception_settings_of_the_local_target() -> None:
    # The environment's own record wins: Kyverno out of cluster has no Deployment.
    found = exceptions.settings(
        _Deployments(None),  # type: ignore[arg-type]
        _target({"exception_namespace": "sc-abcdef-exceptions"}),
    )
    assert found.namespace == "sc-abcdef-exceptions"


def test_chart_values_turn_exceptions_on_for_one_namespace() -> None:
    values = incluster.chart_values("127.0.0.1:5000", None, "sc-abcdef-exceptions")
    want = {"enabled": True, "namespace": "sc-abcdef-exceptions"}
    assert values["features"]["policyExceptions"] == want
    assert "policyExceptions" not in incluster.chart_values("127.0.0.1:5000")["features"]


def test_no_platform_child_is_no_registry_failure() -> None:
    # IDX-03.ivpol: Kyverno read the index fine and refused it for its platforms; the
    # registry's credentials and reachability are not the cause.
    message = (
        'admission webhook "ivpol.mutate.kyverno.svc-fail-finegrained-p" denied the request: '
        "Policy p error: failed to update digest: failed to resolve digest for image "
        "reg/x:t: no child with platform linux/amd64 in index reg/x:t"
    )
    denial = parse_denial(message)
    assert not denial.registry_error and denial.verdict == "signature"
    unauthorized = message.replace(
        "no child with platform linux/amd64 in index reg/x:t", "UNAUTHORIZED: authentication"
    )
    assert parse_denial(unauthorized).verdict == "environment: registry"


def test_pull_secret_holds_the_registry_credentials() -> None:
    registry = Registry("127.0.0.1:5000", "http", username="puller", password="s3cret")
    secret = pullsecret.secret("app-pull", "ns", registry, "run")
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    entry = config["auths"]["127.0.0.1:5000"]
    assert base64.b64decode(entry["auth"]).decode() == "puller:s3cret"

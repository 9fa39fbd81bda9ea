from __future__ import annotations

from signcheck import kyverno
from signcheck.target import RUN_LABEL

PEM = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"


def spec(**kw: object) -> kyverno.PolicySpec:
    base: dict[str, object] = dict(
        run_id="r1", image_references=("reg/x/r1/*",), public_keys=(PEM,)
    )
    base.update(kw)
    return kyverno.PolicySpec(**base)  # type: ignore[arg-type]


def test_seed_fields_and_offline_switches() -> None:
    p = kyverno.render_cluster_policy(spec())
    assert p["metadata"]["name"] == "check-image"
    s = p["spec"]
    assert s["validationFailureAction"] == "enforce"
    assert s["background"] is False
    assert s["webhookTimeoutSeconds"] == 30
    assert s["failurePolicy"] == "Fail"
    rule = s["rules"][0]
    assert rule["name"] == "check-image"
    verify = rule["verifyImages"][0]
    assert verify["imageReferences"] == ["reg/x/r1/*"]
    attestor = verify["attestors"][0]
    assert attestor["count"] == 1
    keys = attestor["entries"][0]["keys"]
    assert keys["publicKeys"] == PEM.strip()
    assert keys["rekor"] == {"ignoreTlog": True} and keys["ctlog"] == {"ignoreSCT": True}


def test_scoped_to_the_run_by_default_seed_exact_is_cluster_wide() -> None:
    scoped = kyverno.render_cluster_policy(spec())["spec"]["rules"][0]["match"]["any"][0]
    assert scoped["resources"]["namespaceSelector"] == {"matchLabels": {RUN_LABEL: "r1"}}
    exact = kyverno.render_cluster_policy(spec(seed_exact=True))["spec"]["rules"][0]
    assert exact["match"] == {"any": [{"resources": {"kinds": ["Pod"]}}]}


def test_two_keys_make_two_entries() -> None:
    p = kyverno.render_cluster_policy(spec(public_keys=(PEM, PEM.replace("MFkw", "MFkx"))))
    assert len(p["spec"]["rules"][0]["verifyImages"][0]["attestors"][0]["entries"]) == 2


def test_ready_condition() -> None:
    assert kyverno.is_ready({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    assert not kyverno.is_ready({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    assert not kyverno.is_ready({})

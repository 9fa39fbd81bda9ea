from __future__ import annotations

from signcheck.kyverno import cpol, ivpol
from signcheck.target import RUN_LABEL

PEM = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"


def spec(**kw: object) -> cpol.PolicySpec:
    base: dict[str, object] = dict(
        run_id="r1", image_references=("reg/x/r1/*",), public_keys=(PEM,)
    )
    base.update(kw)
    return cpol.PolicySpec(**base)  # type: ignore[arg-type]


def test_seed_fields_and_offline_switches() -> None:
    p = cpol.render_cluster_policy(spec())
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
    scoped = cpol.render_cluster_policy(spec())["spec"]["rules"][0]["match"]["any"][0]
    # The run's namespaces, except those a policy variant governs.
    assert scoped["resources"]["namespaceSelector"] == {
        "matchLabels": {RUN_LABEL: "r1"},
        "matchExpressions": [{"key": cpol.VARIANT_LABEL, "operator": "DoesNotExist"}],
    }
    exact = cpol.render_cluster_policy(spec(seed_exact=True))["spec"]["rules"][0]
    assert exact["match"] == {"any": [{"resources": {"kinds": ["Pod"]}}]}


def test_variant_matches_only_its_namespaces_and_says_what_differs() -> None:
    p = cpol.render_cluster_policy(
        spec(
            name="check-image-x",
            variant="x",
            mutate_digest=False,
            verify_digest=False,
            use_cache=False,
            signature_type="SigstoreBundle",
            registry_credentials={"allowInsecureRegistry": True, "secrets": []},
        )
    )
    assert p["metadata"]["labels"] == {RUN_LABEL: "r1", cpol.VARIANT_LABEL: "x"}
    rule = p["spec"]["rules"][0]
    assert rule["match"]["any"][0]["resources"]["namespaceSelector"] == {
        "matchLabels": {RUN_LABEL: "r1", cpol.VARIANT_LABEL: "x"}
    }
    verify = rule["verifyImages"][0]
    assert verify["type"] == "SigstoreBundle"
    assert (verify["mutateDigest"], verify["verifyDigest"], verify["useCache"]) == (
        False,
        False,
        False,
    )
    assert "required" not in verify  # only what differs from Kyverno's defaults
    assert verify["imageRegistryCredentials"] == {"allowInsecureRegistry": True, "secrets": []}


def test_seed_policy_renders_without_defaults() -> None:
    verify = cpol.render_cluster_policy(spec())["spec"]["rules"][0]["verifyImages"][0]
    assert set(verify) == {"imageReferences", "attestors"}


def test_autogen_rule_names() -> None:
    assert cpol.autogen_rule("check-image", "Pod") == "check-image"
    assert cpol.autogen_rule("check-image", "Deployment") == "autogen-check-image"
    assert cpol.autogen_rule("check-image", "CronJob") == "autogen-cronjob-check-image"


def test_image_validating_policy_twin() -> None:
    doc = ivpol.render(
        ivpol.IvpolSpec(
            run_id="r1", image_references=("reg/x/r1/*",), public_keys=(PEM, PEM), name="iv"
        )
    )
    s = doc["spec"]
    assert doc["apiVersion"] == "policies.kyverno.io/v1"
    assert s["validationActions"] == ["Deny"] and s["failurePolicy"] == "Fail"
    assert s["webhookConfiguration"] == {"timeoutSeconds": 30}
    assert s["evaluation"] == {"background": {"enabled": False}}
    assert [a["name"] for a in s["attestors"]] == ["cosign", "cosign2"]
    assert s["attestors"][0]["cosign"]["ctlog"] == {
        "insecureIgnoreTlog": True,
        "insecureIgnoreSCT": True,
    }
    # Exactly `pods`, or Kyverno makes no autogen rules for pod controllers.
    assert s["matchConstraints"]["resourceRules"][0]["resources"] == ["pods"]
    expression = s["variables"][0]["expression"]
    assert "images.initContainers" in expression and "attestors.cosign2" in expression
    assert "validationConfigurations" not in s
    eph = ivpol.render(
        ivpol.IvpolSpec(
            run_id="r1",
            image_references=("g",),
            public_keys=(PEM,),
            ephemeral=True,
            checks="containers",
            required=False,
        )
    )["spec"]
    assert eph["matchConstraints"]["resourceRules"][0]["resources"] == [
        "pods",
        "pods/ephemeralcontainers",
    ]
    assert eph["variables"][0]["expression"].startswith("(images.containers).filter")
    assert eph["validationConfigurations"] == {"required": False}
    assert ivpol.webhook("iv") == "ivpol.validate.kyverno.svc-fail-finegrained-iv"


def test_ivpol_ready() -> None:
    assert cpol.ivpol_is_ready({"status": {"conditionStatus": {"ready": True}}})
    assert not cpol.ivpol_is_ready({"status": {"conditionStatus": {"ready": False}}})
    assert not cpol.ivpol_is_ready({})


def test_seed_policy_file_is_the_seeds() -> None:
    seed = cpol.seed_policy()
    assert seed["metadata"] == {"name": "check-image"}
    verify = seed["spec"]["rules"][0]["verifyImages"][0]
    assert verify["imageReferences"] == ["{{ registry }}/<registry_ID>/*"]


def test_two_keys_make_two_entries() -> None:
    p = cpol.render_cluster_policy(spec(public_keys=(PEM, PEM.replace("MFkw", "MFkx"))))
    assert len(p["spec"]["rules"][0]["verifyImages"][0]["attestors"][0]["entries"]) == 2


def test_ready_condition() -> None:
    assert cpol.is_ready({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    stale = {"type": "Ready", "status": "True", "observedGeneration": 1}
    assert not cpol.is_ready({"metadata": {"generation": 2}, "status": {"conditions": [stale]}})
    assert not cpol.is_ready({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    assert not cpol.is_ready({})

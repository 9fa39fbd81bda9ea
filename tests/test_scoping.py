"""Scoping: a run's policy governs the run's namespaces only, so a run on a shared cluster
never blocks anybody else's pods; `--seed-exact-policy` applies the seed's cluster-wide
policy unchanged, for those who want exactly that."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fixtures.types import Admit, MakeNamespace, PolicyOf
from signcheck.clients import admission, k8s
from signcheck.kyverno import cpol
from signcheck.run.resources import Images, SessionState
from signcheck.run.scenarios import MAIN
from signcheck.suite import expect
from signcheck.suite.session import SigncheckRun
from signcheck.target import RUN_LABEL, Target


@pytest.mark.scenario(
    "SCOPE-01",
    step="During the run, an unsigned pod in a namespace outside the run",
    expect="admitted, untouched (the run's policy selects only namespaces labelled "
    "signcheck.io/run=<run id>), while the same pod is denied in a namespace of the run; "
    "with --seed-exact-policy: denied there too (no signatures found)",
)
def test_namespace_outside_the_run(
    make_namespace: MakeNamespace,
    admit: Admit,
    images: Images,
    policy_of: PolicyOf,
    signcheck_run: SigncheckRun,
    target: Target,
) -> None:
    """The suite is safe on a shared cluster: other namespaces never feel the run's policy."""
    unsigned = images.unsigned
    inside = make_namespace()
    outside = make_namespace(outside=True)
    policy = policy_of(MAIN)
    expect.denied_unsigned(
        admit(k8s.pod("inside", inside, unsigned.by_tag, target.run_id), unsigned.by_tag),
        "the unsigned pod in a namespace of the run",
        policy,
        image=unsigned.by_tag,
    )
    # Control: the outside namespace admits pods at all (a signed one, in every mode).
    expect.admitted(
        admit(k8s.pod("signed", outside, images.signed.by_tag, target.run_id)),
        "a signed pod outside the run",
    )
    pod = k8s.pod("outside", outside, unsigned.by_tag, target.run_id)
    result = admit(pod, unsigned.by_tag)
    if signcheck_run.settings.seed_exact_policy:
        expect.denied_unsigned(
            result,
            "the unsigned pod outside the run (seed's cluster-wide policy)",
            policy,
            image=unsigned.by_tag,
        )
        return
    admitted = expect.admitted(result, "the unsigned pod in a namespace outside the run")
    assert isinstance(admitted, admission.Admitted)
    assert admitted.obj["spec"]["containers"][0]["image"] == unsigned.by_tag
    annotations = admitted.obj["metadata"].get("annotations") or {}
    assert expect.VERIFY_ANNOTATION not in annotations, annotations


def _without(doc: dict[str, Any], additions: dict[str, Any]) -> dict[str, Any]:
    """`doc` minus the documented additions (asserting each is there, exactly)."""
    doc = copy.deepcopy(doc)
    keys = doc["spec"]["rules"][0]["verifyImages"][0]["attestors"][0]["entries"][0]["keys"]
    for key, value in additions["keys"].items():
        assert keys.pop(key) == value, key
    assert doc["metadata"].pop("labels") == additions["labels"]
    return doc


@pytest.mark.scenario(
    "SCOPE-02",
    step="--seed-exact-policy: the seed's policy.yaml, cluster-wide, unchanged",
    expect="the rendered policy equals the seed's policy.yaml with its two placeholders "
    "filled, plus only the offline switches (rekor.ignoreTlog, ctlog.ignoreSCT) and the run "
    "label; applied as such with --seed-exact-policy (no namespaceSelector), scoped to the "
    "run's namespaces otherwise",
)
def test_seed_exact_policy(
    run_state: SessionState,
    policies: cpol.Policies,
    signcheck_run: SigncheckRun,
    target: Target,
) -> None:
    """Users who want the tutorial's policy and nothing else get exactly that."""
    glob = target.registry.run_glob(target.run_id)
    pem = run_state.public_key.read_text().strip()
    seed = cpol.seed_policy()
    verify = seed["spec"]["rules"][0]["verifyImages"][0]
    keys = verify["attestors"][0]["entries"][0]["keys"]
    assert verify["imageReferences"] == ["{{ registry }}/<registry_ID>/*"]
    assert keys["publicKeys"] == "<cosign.pub_contents>"
    verify["imageReferences"], keys["publicKeys"] = [glob], pem
    exact = cpol.render_cluster_policy(
        cpol.PolicySpec(
            run_id=target.run_id, image_references=(glob,), public_keys=(pem,), seed_exact=True
        )
    )
    additions = {
        "keys": {"rekor": {"ignoreTlog": True}, "ctlog": {"ignoreSCT": True}},
        "labels": {RUN_LABEL: target.run_id},
    }
    assert _without(exact, additions) == seed
    live = policies.get(run_state.policy_name)
    assert live is not None, f"ClusterPolicy {run_state.policy_name} does not exist"
    match = live["spec"]["rules"][0]["match"]["any"][0]["resources"]
    if signcheck_run.settings.seed_exact_policy:
        assert run_state.policy_name == "check-image"
        assert "namespaceSelector" not in match, match
        assert run_state.policy == exact
    else:
        assert match["namespaceSelector"] == cpol.namespace_selector(target.run_id, None)

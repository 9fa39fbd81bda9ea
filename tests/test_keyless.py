"""Keyless signatures: a policy that trusts an identity (an OIDC subject and issuer) and a
certificate authority's root instead of a key. The session's signing batch starts a local
Fulcio that trusts the local apiserver's service-account issuer and signs, offline, one image
as the service account `signer` and one as `signer-impostor`; a CA of no policy's issues a
certificate for `signer` that signs a third (`signcheck.run.keyless`). Each case runs against a
ClusterPolicy keyless attestor and its ImageValidatingPolicy twin, each denial beside the
`signer` image admitted in the same namespace.

Kyverno v1.19.1's ImageValidatingPolicy initialises the public Sigstore TUF client for a
keyless attestor even when the attestor carries its own roots and ignores the log and SCT
(only key and certificate attestors skip it, kyverno#16298), so offline it refuses every
image: KEY-01.ivpol reports that when Kyverno's log shows the TUF failure, and the twin's
negative cases cannot be judged beside a refused control.

Every case asks admission only: server-side dry runs (the same webhooks and verification,
nothing stored) in the module's one namespace per policy (`shared_namespace`).
"""

from __future__ import annotations

import copy
import os
import re
import time
from typing import Any

import pytest

from fixtures.session import skip_unless_applied
from fixtures.types import Admit, MakeNamespace, PolicyOf
from signcheck.clients import admission, k8s, oci
from signcheck.clients.admission import Admission
from signcheck.clients.k8s import Cluster
from signcheck.clients.k8sapi import ApiError
from signcheck.errors import SigncheckError
from signcheck.kyverno import attestations, cpol, ivpol
from signcheck.kyverno import keyless as policies
from signcheck.kyverno.versions import IVPOL_BEFORE_1_19
from signcheck.report import evidence
from signcheck.run import keyless
from signcheck.run.resources import SessionState, namespace_name
from signcheck.run.scenarios import PolicyRef, Scenarios
from signcheck.suite import expect
from signcheck.suite.session import SigncheckRun
from signcheck.target import Target
from signcheck.timeouts import Timeouts
from signcheck.verdict.observe import observe
from signcheck.wait import until

API = pytest.mark.parametrize("api", ["cpol", "ivpol"])
OFFLINE_KEYLESS = "https://github.com/kyverno/kyverno/issues/15690"
TUF_FAILURE = "failed to initialize TUF client"
ATTESTATION_FAILED = "image attestations verification failed, verifiedCount: 0, requiredCount: 1"
REGEXP_CVE = "https://nvd.nist.gov/vuln/detail/CVE-2025-29778"


@pytest.fixture(autouse=True)
def _signed_keyless(scenarios: Scenarios, signcheck_run: SigncheckRun) -> None:
    """Skip, saying why, when the run could not sign keyless (another target) or applied no
    variant (`--seed-exact-policy`)."""
    if why := scenarios.keyless.get("unavailable"):
        pytest.skip(why)
    if not scenarios.keyless.get("fulcio_root"):
        skip_unless_applied("keyless", scenarios, signcheck_run)


def _variant(api: str, base: str) -> str:
    return f"ivpol-{base}" if api == "ivpol" else base


def _admit(admit: Admit, ns: str, role: str, image: oci.PushedImage, target: Target) -> Admission:
    return admit(k8s.pod(role.removeprefix("kl-"), ns, image.by_tag, target.run_id), dry_run=True)


def _named(api: str, image: oci.PushedImage) -> str:
    # A keyless ClusterPolicy denial names the reference as the pod wrote it (the tag);
    # an ImageValidatingPolicy the tag pinned by its mutation.
    return image.by_tag if api == "cpol" else f"{image.by_tag}@{image.digest}"


_TUF_SEEN: list[str] = []
"""The first refusal of the right signer's image by a keyless ImageValidatingPolicy for want
of the public TUF repository in this process (test id, Kyverno's log line). The refusal is
in the keyless attestor's set-up, before any identity or image is looked at, so a later
ivpol case skips on it instead of proving it again in a namespace of its own."""


def _skip_if_tuf_seen(api: str) -> None:
    if api == "ivpol" and _TUF_SEEN:
        pytest.skip(
            "cannot judge: keyless ImageValidatingPolicies refuse even the right signer's image "
            f"offline in this run (reported as KEY-01.ivpol; seen by {_TUF_SEEN[0]})"
        )


def _tuf_refusal(
    result: Admission, image: oci.PushedImage, target: Target, cluster: Cluster, since: float
) -> str | None:
    """The Kyverno log line showing that an ImageValidatingPolicy refused `image` because it
    could not reach the public TUF repository, or None (no cause named that was not seen)."""
    if not isinstance(result, admission.Denied):
        return None
    if not (result.reason or "").startswith(ivpol.MESSAGE):
        return None
    try:
        log = evidence.kyverno_log(target, cluster, None, since)
    except SigncheckError:
        return None  # unread, so no cause is named: the assertions below judge the refusal
    for line in log.splitlines():
        if TUF_FAILURE in line and image.digest in line:
            # Kyverno in a pod logs in colour.
            seen = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()[:400]
            _TUF_SEEN.append(f"{os.environ.get('PYTEST_CURRENT_TEST', '?').split(' ')[0]}: {seen}")
            return seen
    return None


def _control(
    api: str,
    ns: str,
    admit: Admit,
    scenarios: Scenarios,
    target: Target,
    cluster: Cluster,
) -> None:
    """The `signer` image admitted in `ns`: without it a denial proves nothing."""
    _skip_if_tuf_seen(api)
    signed = scenarios.images["kl-signer"]
    since = time.time()
    result = _admit(admit, ns, "kl-signer", signed, target)
    if api == "ivpol" and (line := _tuf_refusal(result, signed, target, cluster, since)):
        pytest.skip(
            "cannot judge: the keyless ImageValidatingPolicy refuses the right signer's image "
            f"too, offline (reported as KEY-01.ivpol; Kyverno's log: {line})"
        )
    expect.verified(result, "the image signed keyless by `signer` (control)", signed, api)


@pytest.mark.scenario(
    "KEY-01",
    step="Run an image signed keyless (local Fulcio, no transparency log) by the service "
    "account the policy names, under a keyless attestor with Fulcio's root",
    expect="admitted, pinned to its digest, the pass recorded (cpol). ivpol on Kyverno 1.19.1: "
    "refused offline (its keyless attestor initialises the public TUF client first; Kyverno's "
    "log shows it), an INFO finding, never a pass",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_right_identity_admitted(
    api: str,
    shared_namespace: MakeNamespace,
    admit: Admit,
    scenarios: Scenarios,
    policy_of: PolicyOf,
    target: Target,
    cluster: Cluster,
) -> None:
    """The control of every other KEY case."""
    ns = shared_namespace(_variant(api, "keyless"))
    signed = scenarios.images["kl-signer"]
    since = time.time()
    result = _admit(admit, ns, "kl-signer", signed, target)
    if api == "ivpol" and (line := _tuf_refusal(result, signed, target, cluster, since)):
        assert isinstance(result, admission.Denied)
        expect.denied_by(
            result,
            "the image signed keyless by the right identity",
            policy_of(_variant(api, "keyless")),
            image=_named(api, signed),
            reason=ivpol.MESSAGE,
        )
        observe(
            "KEY-01.ivpol",
            "a keyless ImageValidatingPolicy needs the public Sigstore TUF repository even when "
            "its attestor carries its own roots and ignores the transparency log and SCT: "
            "offline it refuses every image, the right signer's included",
            "info",
            "verify keyless signatures offline with a ClusterPolicy keyless attestor (KEY-01.cpol "
            "admits the same image), or give the ImageValidatingPolicy attestor a `tuf` mirror "
            "and root the cluster can reach",
            reference=OFFLINE_KEYLESS,
            evidence=f"{result.webhook}: {result.reason}; Kyverno's log: {line}",
        )
    expect.verified(result, "the image signed keyless by the right identity", signed, api)


def _denied(
    api: str,
    base: str,
    role: str,
    reason: str,
    shared_namespace: MakeNamespace,
    admit: Admit,
    scenarios: Scenarios,
    policy_of: PolicyOf,
    target: Target,
    cluster: Cluster,
    control: bool = True,
) -> admission.Denied:
    _skip_if_tuf_seen(api)
    ns = shared_namespace(_variant(api, base))
    if control:
        _control(api, ns, admit, scenarios, target, cluster)
    image = scenarios.images[role]
    result = _admit(admit, ns, role, image, target)
    denial = expect.denied_by(
        result,
        f"the image {role}",
        policy_of(_variant(api, base)),
        image=_named(api, image),
        reason=reason if api == "cpol" else ivpol.MESSAGE,
    )
    assert denial.verdict == "signature", denial.verdict
    return denial


@pytest.mark.scenario(
    "KEY-02",
    step="Run an image signed keyless by another service account of the same namespace "
    f"(`{keyless.IMPOSTOR}`), same issuer, same Fulcio",
    expect="denied: 'subject mismatch: expected .../serviceaccounts/signer, received "
    f".../serviceaccounts/{keyless.IMPOSTOR}' (cpol) / 'no verified signature for <image>' "
    "(ivpol), beside the signer's image admitted",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_other_subject_denied(
    api: str,
    shared_namespace: MakeNamespace,
    admit: Admit,
    scenarios: Scenarios,
    policy_of: PolicyOf,
    target: Target,
    cluster: Cluster,
) -> None:
    """Anyone the CA trusts can sign; only the named identity counts."""
    signer = scenarios.keyless["subjects"][keyless.SIGNER]
    impostor = scenarios.keyless["subjects"][keyless.IMPOSTOR]
    reason = f"subject mismatch: expected {signer}, received {impostor}"
    args = (shared_namespace, admit, scenarios, policy_of, target, cluster)
    _denied(api, "keyless", "kl-impostor", reason, *args)


@pytest.mark.scenario(
    "KEY-03",
    step="Run the signer's image under a policy naming the same subject from another issuer "
    f"({keyless.OTHER_ISSUER})",
    expect="denied: 'issuer mismatch: expected <other issuer>, received <the apiserver's>' "
    "(cpol) / 'no verified signature for <image>' (ivpol), beside the same image admitted "
    "under the right issuer",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_other_issuer_denied(
    api: str,
    shared_namespace: MakeNamespace,
    admit: Admit,
    scenarios: Scenarios,
    policy_of: PolicyOf,
    target: Target,
    cluster: Cluster,
) -> None:
    """A subject means nothing without its issuer: the same name from another identity
    provider is another identity."""
    _skip_if_tuf_seen(api)
    control_ns = shared_namespace(_variant(api, "keyless"))
    _control(api, control_ns, admit, scenarios, target, cluster)
    issuer = scenarios.keyless["issuer"]
    reason = f"issuer mismatch: expected {keyless.OTHER_ISSUER}, received {issuer}"
    args = (shared_namespace, admit, scenarios, policy_of, target, cluster)
    _denied(api, "keyless-issuer", "kl-signer", reason, *args, control=False)


@pytest.mark.scenario(
    "KEY-04",
    step="Run an image signed with a certificate for the right identity (subject, issuer "
    "extensions) issued by a CA the policy does not trust",
    expect="denied: 'no matching signatures: cert verification failed: x509: certificate "
    "signed by unknown authority' (cpol) / 'no verified signature for <image>' (ivpol), beside "
    "the signer's image admitted; cosign verifies the same signature under that CA's own root",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_other_root_denied(
    api: str,
    shared_namespace: MakeNamespace,
    admit: Admit,
    scenarios: Scenarios,
    policy_of: PolicyOf,
    target: Target,
    cluster: Cluster,
) -> None:
    """The identity in a certificate is only as good as the CA that issued it."""
    assert scenarios.keyless.get("foreign_verified") is True, (
        "the foreign CA's signature did not verify under its own root: a denial would not "
        f"show that the root is checked ({scenarios.keyless})"
    )
    reason = "no matching signatures: cert verification failed: x509: certificate signed by "
    reason += "unknown authority"
    args = (shared_namespace, admit, scenarios, policy_of, target, cluster)
    _denied(api, "keyless", "kl-foreign", reason, *args)


@pytest.mark.scenario(
    "KEY-05",
    step=f"Run the `{keyless.IMPOSTOR}` image under anchored subjectRegExp/issuerRegExp for "
    "`signer` (the class of CVE-2025-29778, where Kyverno ignored both)",
    expect="denied: 'subject mismatch: expected regexp ...' (cpol) / 'no verified signature "
    "for <image>' (ivpol), beside the signer's image admitted under the same regexps",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_identity_regexp_enforced(
    api: str,
    shared_namespace: MakeNamespace,
    admit: Admit,
    scenarios: Scenarios,
    policy_of: PolicyOf,
    target: Target,
    cluster: Cluster,
) -> None:
    """An identity regexp is a check, not a comment: a name that only starts like the
    signer's does not match an anchored expression."""
    _skip_if_tuf_seen(api)
    ns = shared_namespace(_variant(api, "keyless-regexp"))
    _control(api, ns, admit, scenarios, target, cluster)
    image = scenarios.images["kl-impostor"]
    result = _admit(admit, ns, "kl-impostor", image, target)
    if isinstance(result, admission.Admitted):
        observe(
            f"KEY-05.{api}",
            "an identity regular expression is not enforced: an image signed by "
            f"`{keyless.IMPOSTOR}` is admitted under a policy whose subjectRegExp accepts only "
            "`signer`",
            "high",
            "upgrade Kyverno to a release with the fix for CVE-2025-29778; meanwhile name "
            "exact `subject` and `issuer` values",
            reference=REGEXP_CVE,
            evidence=f"admitted {image.by_tag} under {policy_of(_variant(api, 'keyless-regexp'))}",
        )
    expect.denied_by(
        result,
        f"the image signed by {keyless.IMPOSTOR}",
        policy_of(_variant(api, "keyless-regexp")),
        image=_named(api, image),
        reason="subject mismatch" if api == "cpol" else ivpol.MESSAGE,
    )


def _bad_regexp_policy(api: str, policy: PolicyRef, scenarios: Scenarios) -> dict[str, Any]:
    """The `keyless-regexp` policy for its own variant, with a subjectRegExp that is not a
    regular expression."""
    doc = copy.deepcopy(policy.doc)
    name = f"{policy.name}-invalid"
    variant = _variant(api, "keyless-badregexp")
    doc["metadata"]["name"] = name
    doc["metadata"]["labels"][cpol.VARIANT_LABEL] = variant
    identity = policies.Identity(subject_regexp=BAD_REGEXP, issuer=scenarios.keyless["issuer"])
    root = scenarios.keyless["fulcio_root"]
    if api == "cpol":
        doc = policies.cpol(doc, identity, root)
        selector = doc["spec"]["rules"][0]["match"]["any"][0]["resources"]["namespaceSelector"]
    else:
        doc = policies.ivpol(doc, identity, root)
        selector = doc["spec"]["matchConstraints"]["namespaceSelector"]
    selector["matchLabels"][cpol.VARIANT_LABEL] = variant
    return doc


BAD_REGEXP = "^https://kubernetes\\.io/namespaces/(["


def _until_enforced(
    cluster: Cluster,
    ns: str,
    policy: str,
    run_state: SessionState,
    target: Target,
    timeouts: Timeouts,
) -> None:
    """Until the new policy refuses the run's unsigned image in `ns` (dry runs): "Ready"
    comes before the API server calls a new webhook, and an image admitted in between would
    read as a bypass. The positive control of KEY-06's judgement."""
    unsigned = run_state.images.unsigned
    pod = k8s.pod("enforced-probe", ns, unsigned.by_tag, target.run_id)

    def refused() -> bool:
        result = cluster.create(pod, dry_run=True)
        return isinstance(result, admission.Denied) and result.policy == policy

    until(
        refused,
        what=f"{policy} to refuse the unsigned image in {ns}",
        timeout=timeouts.policy_ready,
        interval=0.1,
    )


@pytest.mark.scenario(
    "KEY-06",
    step=f"Create a keyless policy whose subjectRegExp is not a regular expression "
    f"(`{BAD_REGEXP}`), then run the signer's and the impostor's images under it",
    expect="refused when the policy is created, naming the expression. Kyverno 1.19.1 accepts "
    "it and reports it Ready, then refuses every image it matches with 'invalid regexp for "
    "subject': a LOW finding (fails closed: an outage, not a bypass); an image admitted under "
    "it would be a HIGH finding",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_invalid_regexp(
    api: str,
    admit: Admit,
    scenarios: Scenarios,
    policy_of: PolicyOf,
    target: Target,
    cluster: Cluster,
    signcheck_run: SigncheckRun,
    run_state: SessionState,
) -> None:
    """A typo in an identity expression must be caught by someone: the API server at
    creation, or, failing that, the suite."""
    _skip_if_tuf_seen(api)
    base = policy_of(_variant(api, "keyless-regexp"))
    doc = _bad_regexp_policy(api, base, scenarios)
    kind = cpol.kind_of(doc)
    try:
        cluster.create_object(kind.group, kind.version, kind.plural, doc, dry_run=True)
    except ApiError as err:
        assert err.status in (400, 422), err
        assert "regexp" in (err.server_message or str(err)).lower(), err
        return
    timeouts = signcheck_run.settings.timeouts
    variant = _variant(api, "keyless-badregexp")
    ns = namespace_name(target.run_id, f"key-06-{variant}")
    cluster.create_namespace(ns, target.run_id, labels={cpol.VARIANT_LABEL: variant})
    try:
        cpol.apply_all(cluster, [doc], timeouts.policy_ready)
        cpol.wait_namespace_seen(cluster, ns, target.run_id, timeouts.policy_ready)
        _until_enforced(cluster, ns, doc["metadata"]["name"], run_state, target, timeouts)
        results = {
            role: _admit(admit, ns, role, scenarios.images[role], target)
            for role in ("kl-signer", "kl-impostor")
        }
    finally:
        cpol.Policies(cluster, kind).delete(doc["metadata"]["name"])
    admitted = [r for r, res in results.items() if isinstance(res, admission.Admitted)]
    if admitted:
        observe(
            f"KEY-06.{api}",
            f"a policy whose subjectRegExp does not compile admits {', '.join(admitted)}: the "
            "identity check is skipped",
            "high",
            "upgrade Kyverno; meanwhile name exact `subject` and `issuer` values",
            reference=REGEXP_CVE,
            evidence=f"{doc['metadata']['name']} accepted at creation and Ready",
        )
    signer = results["kl-signer"]
    assert isinstance(signer, admission.Denied)
    if api == "ivpol" and (signer.reason or "").startswith(ivpol.MESSAGE):
        pytest.skip(
            "cannot judge what the ImageValidatingPolicy does with the expression: it refuses "
            "every keyless image offline (KEY-01.ivpol); it was accepted at creation"
        )
    assert "invalid regexp for subject" in (signer.reason or ""), signer.reason
    observe(
        f"KEY-06.{api}",
        "a keyless policy whose subjectRegExp does not compile is accepted and reports Ready; it "
        "then refuses every image it matches, the right signer's included (fails closed)",
        "low",
        "compile identity expressions (Go RE2) before applying a policy, e.g. in the CI that "
        "ships policies, and alert on 'invalid regexp' admission denials",
        evidence=f"{signer.webhook}: {signer.reason}",
    )


@pytest.mark.scenario(
    "KEY-07",
    step="Run an image signed keyless by `signer` whose vuln attestation was made keyless by "
    f"`{keyless.IMPOSTOR}`, under a policy requiring a vuln attestation by `signer`",
    expect="denied: 'image attestations verification failed, verifiedCount: 0, requiredCount: 1, "
    "error: ...subject mismatch...' (cpol) / 'no verified vuln attestation for <image>' (ivpol), "
    "beside the image signed and attested by `signer` admitted",
    versions=IVPOL_BEFORE_1_19,
)
@API
def test_attestation_by_other_identity_denied(
    api: str,
    shared_namespace: MakeNamespace,
    admit: Admit,
    scenarios: Scenarios,
    policy_of: PolicyOf,
    target: Target,
    cluster: Cluster,
) -> None:
    """A keyless attestation counts only from the identity the policy names: a signed image
    does not borrow trust for an attestation anyone else attached."""
    _skip_if_tuf_seen(api)
    ns = shared_namespace(_variant(api, "keyless-attest"))
    _control(api, ns, admit, scenarios, target, cluster)
    image = scenarios.images["kl-attested-impostor"]
    result = _admit(admit, ns, "kl-attested-impostor", image, target)
    denial = expect.denied_by(
        result,
        "the image attested by another identity",
        policy_of(_variant(api, "keyless-attest")),
        image=None if api == "cpol" else f"{image.by_tag}@{image.digest}",
        reason=ATTESTATION_FAILED if api == "cpol" else attestations.IVPOL_UNATTESTED,
    )
    assert denial.verdict == "signature", denial.verdict
    if api == "cpol":
        assert "subject mismatch" in (denial.reason or ""), denial.reason

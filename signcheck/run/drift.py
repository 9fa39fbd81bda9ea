"""Session resources of the scenarios about what happens after admission: workloads made
before a policy governed them (UPD-01, UPD-02: `signcheck.run.updates`) and a signature
removed after admission under background scanning (BG-01: `signcheck.run.background`).

Both need time to pass between two steps (a controller meeting the policy, a background scan
after the removal); the session setup takes the first step (`start`, while images are being
signed, then `arm`, once every policy is Ready) so that the time passes while the other tests
run, and the tests (marked `late`) only read what happened.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from signcheck.clients import oci
from signcheck.run import background, updates
from signcheck.run.context import RunContext


class _Variant(Protocol):
    @property
    def doc(self) -> dict[str, Any]: ...


def start(
    res: RunContext,
    seed_images: dict[str, oci.PushedImage],
    scenario_images: dict[str, oci.PushedImage],
    variants: Mapping[str, _Variant],
    sign: Callable[[list[str]], object],
) -> dict[str, Any]:
    """UPD's ungoverned Deployments, then BG-01's image signed with the run's key (`sign`,
    here rather than in the run's first signing, which the Audit scenario waits for), its
    policies and pods. Nothing under `--seed-exact-policy`: the seed's cluster-wide policy
    governs every namespace from the start, and the variants are not applied."""
    if res.settings.seed_exact_policy or not variants:
        return {}
    signed, unsigned = seed_images["signed"], seed_images["unsigned"]
    apis = ["cpol", *(["ivpol"] if "ivpol" in variants else [])]
    docs = {v: variants[v].doc for v in background.VARIANTS if v in variants}
    images = {"kept": signed, "revoked": scenario_images[background.REVOKED]}

    def background_start() -> dict[str, Any]:
        if not docs:
            return {}
        sign([images["revoked"].by_digest])
        return background.start(res, docs, images)

    # Side by side: each is mostly a wait on the API server's controllers or Kyverno.
    with ThreadPoolExecutor(max_workers=1) as pool:
        bg = pool.submit(background_start)
        record = {"updates": updates.start(res, signed, unsigned, apis)}
        record["background"] = bg.result()
    return record


def arm(
    res: RunContext,
    record: dict[str, Any],
    seed_images: dict[str, oci.PushedImage],
    scenario_images: dict[str, oci.PushedImage],
) -> dict[str, Any]:
    """Once every policy is Ready: bring UPD's namespaces under their policies (and scale
    up), and remove BG-01's signature once a background scan passed its pods."""
    if not record:
        return record
    updates.arm(res, record["updates"], seed_images["signed"])
    if record["background"]:
        background.revoke(res, record["background"], scenario_images[background.REVOKED])
    return record


def is_drift_variant(name: str) -> bool:
    """Variants `start` applies itself (the run applies every other one)."""
    return name in background.VARIANTS

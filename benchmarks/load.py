"""Admission under load: pod creates `--parallel` at a time, signed and unsigned mixed
(Connaisseur's load test is the anchor: 100 creates, 20 in parallel), against one local
environment, for the seed's ClusterPolicy and its ImageValidatingPolicy twin.

Every signed create names a tag of its own (the same signed manifest): Kyverno's verification
cache is keyed by image reference, so each one is a full verification, as in a rollout of
many images; unsigned ones are never cached. Creates are real (`--dry-run` sends them through
admission without storing them): what `kubectl apply` of a burst of pods costs, kwok running
the admitted ones. Each create is timed around its API call; the burst's own wall time is
printed too.

Correctness is checked, not only timed: an unsigned pod admitted or a signed pod refused is
printed with its create and the command exits 1 (`LOAD-01` in the suite checks the same on a
smaller burst at every run).

    python -m benchmarks.load [--creates 100] [--parallel 20] [--apis cpol,ivpol] [--dry-run]
                              [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from benchmarks.admission import percentiles
from benchmarks.stand import Stand
from signcheck.clients import burst, k8s
from signcheck.clients.admission import Admitted, Denied
from signcheck.clients.oci import PushedImage
from signcheck.kyverno import cpol, ivpol

VARIANT = {"cpol": None, "ivpol": "ivpol"}


def _policies(stand: Stand) -> None:
    """The seed's ClusterPolicy and its ImageValidatingPolicy twin, each Ready."""
    twin = ivpol.render(
        ivpol.IvpolSpec(
            run_id=stand.run_id,
            image_references=(stand.target.registry.run_glob(stand.run_id),),
            public_keys=(stand.key.public_pem,),
        )
    )
    cpol.apply_all(stand.cluster, [stand.policy(), twin], 60.0)


def _namespace(stand: Stand, api: str) -> str:
    variant = VARIANT[api]
    name = f"load-{api}-{time.time_ns() % 100_000}"
    labels = {cpol.VARIANT_LABEL: variant} if variant else {}
    stand.cluster.create_namespace(name, stand.run_id, labels=labels)
    cpol.wait_namespace_seen(stand.cluster, name, stand.run_id, 60.0)
    return name


def _slipped(role: str, digest: str, result: Admitted | Denied) -> str | None:
    """What broke the promise in one create, or None."""
    if role == "unsigned":
        if isinstance(result, Admitted):
            return "UNSIGNED ADMITTED"
        return (
            None
            if (result.reason or "").startswith(("no signatures found", ivpol.MESSAGE))
            else (f"unsigned denied for another reason: {result.verdict}: {result.reason}")
        )
    if isinstance(result, Denied):
        return f"SIGNED DENIED: {result.verdict}: {result.reason or result.message}"
    image = result.obj["spec"]["containers"][0]["image"]
    return None if image.endswith(f"@{digest}") else f"signed admitted unpinned: {image}"


def run_burst(
    stand: Stand, api: str, signed_tags: list[PushedImage], unsigned: PushedImage, args: Any
) -> dict[str, Any]:
    ns = _namespace(stand, api)
    creates = []
    for i in range(args.creates):
        role, image = ("signed", signed_tags[i]) if i % 2 == 0 else ("unsigned", unsigned)
        pod = k8s.pod(f"{role}-{i}", ns, image.by_tag, stand.run_id)
        creates.append(burst.Create(role, pod, image.by_tag))
    client = burst.pods_api(stand.target.kubeconfig, None, args.parallel)
    started = time.perf_counter()
    timed = burst.burst(client, creates, parallel=args.parallel, dry_run=args.dry_run)
    wall = time.perf_counter() - started
    client.api_client.close()
    slips = []
    for t in timed:
        digest = signed_tags[0].digest if t.create.role == "signed" else unsigned.digest
        if problem := _slipped(t.create.role, digest, t.result):
            slips.append(f"{t.create.pod['metadata']['name']} {t.create.image}: {problem}")
    by_role = {
        role: percentiles([t.seconds for t in timed if t.create.role == role])
        for role in ("signed", "unsigned")
    }
    return {
        "creates": len(timed),
        "parallel": args.parallel,
        "dry_run": args.dry_run,
        "wall_s": round(wall, 2),
        "all": percentiles([t.seconds for t in timed]),
        **by_role,
        "unsigned_admitted": sum(
            1 for t in timed if t.create.role == "unsigned" and isinstance(t.result, Admitted)
        ),
        "signed_denied": sum(
            1 for t in timed if t.create.role == "signed" and isinstance(t.result, Denied)
        ),
        "slips": slips,
    }


def measure(args: Any) -> dict[str, Any]:
    apis = [a for a in args.apis.split(",") if a]
    with Stand() as stand:
        _policies(stand)
        signed = stand.push("signed", sign=True)
        unsigned = stand.push("unsigned")
        raw, media_type, _ = stand.registry.manifest(signed.repository, signed.digest)
        results: dict[str, Any] = {}
        for api in apis:
            # A tag of its own per signed create and per API: every one a cold verification.
            tags = []
            for i in range(args.creates):
                tag = f"load-{api}-{i}"
                stand.registry.put_manifest(signed.repository, tag, raw, media_type)
                tags.append(PushedImage(signed.repository, tag, signed.digest, "", ""))
            results[api] = run_burst(stand, api, tags, unsigned, args)
        return results


def print_table(results: dict[str, Any]) -> None:
    print(
        f"{'api':<6} {'creates':>7} {'par':>4} {'wall s':>7} {'role':<9} {'p50 ms':>8} "
        f"{'p95 ms':>8} {'max ms':>8}  slipped"
    )
    for api, r in results.items():
        for role in ("all", "signed", "unsigned"):
            p = r[role]
            slipped = (
                f"unsigned admitted {r['unsigned_admitted']}, signed denied {r['signed_denied']}"
                if role == "all"
                else ""
            )
            print(
                f"{api:<6} {r['creates']:>7} {r['parallel']:>4} {r['wall_s']:>7} {role:<9} "
                f"{p['p50_ms']:>8} {p['p95_ms']:>8} {p['max_ms']:>8}  {slipped}"
            )
        for line in r["slips"]:
            print(f"  SLIPPED {line}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--creates", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=20)
    parser.add_argument("--apis", default="cpol,ivpol")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = measure(args)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)
    if any(r["slips"] for r in results.values()):
        print("load: the promise broke under load (see SLIPPED above)", file=sys.stderr)
        raise SystemExit(1)
    return results


if __name__ == "__main__":
    main()

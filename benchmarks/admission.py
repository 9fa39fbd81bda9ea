"""Pod admission latency through Kyverno's verifyImages: p50 / p95 / max over N creates.

Three series against one local environment and the seed's policy:
- signed, cache cold: every pod names a new tag of the same signed manifest; Kyverno keys its
  verification cache by policy and image reference, so each create is a full verification
  (tag resolution, signature look-up, signature check);
- signed, cache warm: every pod names the same tag, verified once beforehand;
- unsigned: every pod is denied (failures are not cached).
Each create is a real pod create (kwok runs the admitted ones), timed around the API call.

    python -m benchmarks.admission [--creates 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any

from benchmarks.stand import Stand
from signcheck.clients.admission import Denied


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "n": len(ordered),
        "p50_ms": round(pick(0.50) * 1000, 1),
        "p95_ms": round(pick(0.95) * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 1),
    }


def measure(creates: int) -> dict[str, Any]:
    with Stand() as stand:
        stand.apply_policy()
        signed = stand.push("signed", sign=True)
        unsigned = stand.push("unsigned")
        raw, media_type, _ = stand.registry.manifest(signed.repository, signed.digest)
        cold_refs = []
        for i in range(creates):
            tag = f"cold-{i}"
            stand.registry.put_manifest(signed.repository, tag, raw, media_type)
            cold_refs.append(f"{signed.repository}:{tag}")

        series: dict[str, list[float]] = {"signed_cold": [], "signed_warm": [], "unsigned": []}
        # Warm the cache once, outside the samples.
        first, _ = stand.create_pod(signed.by_tag)
        assert first.admitted, first
        for i in range(creates):
            result, secs = stand.create_pod(cold_refs[i])
            assert result.admitted, result
            series["signed_cold"].append(secs)
            result, secs = stand.create_pod(signed.by_tag)
            assert result.admitted, result
            series["signed_warm"].append(secs)
            result, secs = stand.create_pod(unsigned.by_tag)
            assert isinstance(result, Denied), result
            assert "no signatures found" in (result.reason or ""), result
            series["unsigned"].append(secs)
        return {name: percentiles(samples) for name, samples in series.items()}


def print_table(results: dict[str, Any]) -> None:
    print(f"{'admission':<14} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, r in results.items():
        print(f"{name:<14} {r['n']:>5} {r['p50_ms']:>8} {r['p95_ms']:>8} {r['max_ms']:>8}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--creates", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = measure(args.creates)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)
    return results


if __name__ == "__main__":
    main()

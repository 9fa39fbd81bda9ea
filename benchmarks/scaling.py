"""How a run's wall time grows with the number of signed images it verifies.

For N in (1, 5, 20): a whole run through the library the suite uses: boot the local
environment, push N distinct images and sign each (4 at a time), apply the seed's policy and
wait until Ready, admit one pod per image (each a full verification: distinct digests, so
no cache hit), tear down. A least-squares line through the points gives the fixed cost (the
intercept: it should be the environment, not per-image setup) and the cost per image.

    python -m benchmarks.scaling [--sizes 1,5,20]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from benchmarks.stand import Stand


def one_run(n: int) -> dict[str, Any]:
    phases: dict[str, float] = {}
    start = time.perf_counter()
    mark = start

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name] = round(now - mark, 2)
        mark = now

    stand = Stand()
    with stand:
        lap("boot")
        images = stand.push_many([f"scale-{i}" for i in range(n)], sign=True)
        lap("push + sign")
        stand.apply_policy()
        lap("policy ready")
        for image in images:
            result, _ = stand.create_pod(image.by_tag)
            assert result.admitted, result
        lap("admission")
        mark = time.perf_counter()
    lap("teardown")
    return {"n": n, "wall_seconds": round(time.perf_counter() - start, 2), "phases": phases}


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else 0.0
    return mean_y - slope * mean_x, slope


def measure(sizes: list[int]) -> dict[str, Any]:
    runs = [one_run(n) for n in sizes]
    intercept, slope = fit([(r["n"], r["wall_seconds"]) for r in runs])
    return {
        "runs": runs,
        "fixed_seconds": round(intercept, 2),
        "per_image_seconds": round(slope, 3),
    }


def print_table(results: dict[str, Any]) -> None:
    print(f"{'images':>6} {'wall s':>7}  phases")
    for r in results["runs"]:
        phases = ", ".join(f"{k} {v}" for k, v in r["phases"].items())
        print(f"{r['n']:>6} {r['wall_seconds']:>7}  {phases}")
    print(f"fit: {results['fixed_seconds']} s fixed + {results['per_image_seconds']} s per image")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1,5,20")
    args = parser.parse_args(argv)
    results = measure([int(s) for s in args.sizes.split(",")])
    print_table(results)
    return results


if __name__ == "__main__":
    main()

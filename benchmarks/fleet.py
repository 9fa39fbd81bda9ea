"""A fleet run's wall time against the same runs one after another.

Three local environments from `signcheck env up` stand for three clusters; each is named by
the profile `env up` wrote. `signcheck fleet` runs the same selection against all three, with
`--jobs 3` (the fleet) and with `--jobs 1` (three sequential runs, the peer: what a user
without the fleet does), alternating, so both see the same machine. The environments boot
once, before the pairs, and are stopped afterwards; their boot is not in either figure.

    python -m benchmarks.fleet [--runs 2] [--select SEED] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLUSTERS = 3


def _signcheck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "signcheck", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )


def _up() -> dict[str, Any]:
    proc = _signcheck("env", "up", "--json")
    if proc.returncode != 0:
        raise SystemExit(f"signcheck env up failed: {proc.stderr.strip()}")
    info: dict[str, Any] = json.loads(proc.stdout)
    return info


def _fleet(profiles: list[str], jobs: int, select: str, reports: Path) -> dict[str, Any]:
    argv = ["fleet", "--jobs", str(jobs), "--reports", str(reports)]
    for profile in profiles:
        argv += ["--profile", profile]
    if select:
        argv += ["--", "-k", select]
    start = time.perf_counter()
    proc = _signcheck(*argv)
    wall = round(time.perf_counter() - start, 1)
    fleet = json.loads((reports / "fleet.json").read_text())
    # A figure from runs that did not all judge their cluster would compare nothing.
    if proc.returncode != 0 or fleet["unhealthy"]:
        raise SystemExit(f"fleet --jobs {jobs} not healthy ({fleet['unhealthy']}):\n{proc.stdout}")
    tests = sum(r["totals"].get("total", 0) for r in fleet["runs"])
    return {"jobs": jobs, "wall_seconds": wall, "tests": tests}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2, help="pairs (fleet, sequential)")
    parser.add_argument("--select", default="", help="pytest -k for every run (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)
    envs: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    try:
        for _ in range(CLUSTERS):
            envs.append(_up())
        profiles = [str(env["profile"]) for env in envs]
        with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
            for i in range(args.runs):
                pair = {}
                for jobs in (CLUSTERS, 1):
                    got = _fleet(profiles, jobs, args.select, Path(tmp) / f"{i}-{jobs}")
                    pair["fleet" if jobs == CLUSTERS else "sequential"] = got
                    print(f"pair {i + 1}: --jobs {jobs}: {got['wall_seconds']} s", flush=True)
                pairs.append(pair)
    finally:
        for env in envs:
            _signcheck("env", "down", "--run", str(env["run_id"]))
    fleet_median = round(statistics.median(p["fleet"]["wall_seconds"] for p in pairs), 1)
    seq_median = round(statistics.median(p["sequential"]["wall_seconds"] for p in pairs), 1)
    result = {
        "clusters": CLUSTERS,
        "select": args.select or "(the whole catalogue)",
        "tests_per_fleet": pairs[0]["fleet"]["tests"],
        "pairs": pairs,
        "fleet_median_seconds": fleet_median,
        "sequential_median_seconds": seq_median,
        "speedup": round(seq_median / fleet_median, 2),
    }
    print(
        f"fleet of {CLUSTERS} (--jobs {CLUSTERS}): {fleet_median} s median; the same runs one "
        f"after another (--jobs 1): {seq_median} s; speed-up {result['speedup']}x"
    )
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()

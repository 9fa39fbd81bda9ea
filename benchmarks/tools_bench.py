"""Tool layer figures: cold build seconds per group, warm `signcheck tools list` seconds.

Cold builds are recorded by the build itself (build.json in each cached group), because
re-running a cold build from an empty Go cache costs tens of minutes; `--cold GROUP` does
exactly that in a throw-away cache when you want a fresh figure.

    python -m benchmarks.tools_bench [--runs 5] [--cold GROUP]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from signcheck.tools import pins


def warm_list_seconds(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "signcheck", "tools", "list", "--json"],
            capture_output=True,
            check=False,
        )
        times.append(time.perf_counter() - start)
    return times


def recorded_cold_builds() -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for g in pins.load_pins():
        marker = pins.group_dir(g) / "build.json"
        out[g.name] = json.loads(marker.read_text()).get("seconds") if marker.is_file() else None
    return out


def fresh_cold_build(group: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SIGNCHECK_CACHE": tmp + "/cache", "GOCACHE": tmp + "/gocache"}
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "signcheck", "tools", "build", group], env=env, check=True
        )
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold", action="append", default=[], help="rebuild GROUP from scratch")
    args = parser.parse_args(argv)
    cold = recorded_cold_builds()
    for group in args.cold:
        cold[group] = round(fresh_cold_build(group), 1)
    warm = warm_list_seconds(args.runs)
    print(f"{'group':<14} {'version':<10} cold build (s)")
    for g in pins.load_pins():
        secs = cold.get(g.name)
        print(f"{g.name:<14} {g.version:<10} {secs if secs is not None else 'not built'}")
    total = sum(v for v in cold.values() if v)
    print(f"{'total':<25} {total:.0f}")
    median = statistics.median(warm)
    print(
        f"warm `signcheck tools list` (all tools): median {median:.2f}s "
        f"min {min(warm):.2f}s max {max(warm):.2f}s over {len(warm)} runs (goal < 2 s)"
    )
    return {"cold_build_seconds": cold, "warm_list_seconds": warm, "warm_list_median": median}


if __name__ == "__main__":
    main()

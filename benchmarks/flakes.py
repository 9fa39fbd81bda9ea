"""Determinism: run the whole suite N times on the local target and count flakes per test.

    python -m benchmarks.flakes --runs 20 [--out reports/flakes] [-- EXTRA PYTEST ARGS]

Each run is a fresh `pytest tests` subprocess (its own environment, run id and reports).
A test is *flaky* when its outcome differs between runs; *always failing* when it never
passed. Each run is also checked for what it left: a teardown that was not clean, a run
directory, an environment directory or a process naming its run id. The table goes to the
terminal and everything to `<out>/flakes.json`. Exit status 0 only with no flake, no
failure and nothing left.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = ("pass", "skipped", "finding")
"""Outcomes that are a test's normal result."""


def _processes_naming(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name} {cmdline[:120]}")
    return found


def one_run(
    index: int, out: Path, extra: list[str], suite_dir: Path, env_dir: Path
) -> dict[str, Any]:
    reports = out / f"run-{index:02d}"
    argv = [sys.executable, "-m", "pytest", "tests", "-p", "no:cacheprovider", "-q"]
    argv += ["--signcheck-reports", str(reports), *extra]
    # One runs root: the suite's records under suite/, the environments under env/.
    env = {**os.environ, "SIGNCHECK_RUN_DIR": str(suite_dir.parent)}
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env, check=False)
    wall = time.monotonic() - started
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "terminal.txt").write_text(proc.stdout + proc.stderr)
    result: dict[str, Any] = {"run": index, "exit": proc.returncode, "wall_seconds": round(wall, 1)}
    summary_path = reports / "summary.json"
    if not summary_path.is_file():
        result["problems"] = [f"no summary.json (exit {proc.returncode})"]
        result["tests"] = {}
        return result
    summary = json.loads(summary_path.read_text())
    run_id = summary["run_id"]
    result["run_id"] = run_id
    result["tests"] = {t["nodeid"]: t["outcome"] for t in summary["tests"]}
    result["messages"] = {
        t["nodeid"]: t["message"] for t in summary["tests"] if t["outcome"] != "pass"
    }
    problems = list(summary.get("problems", []))
    if summary.get("teardown", {}).get("clean") is not True:
        problems.append(f"teardown not clean: {summary.get('teardown')}")
    left = [p for p in (suite_dir / run_id, env_dir / run_id) if p.exists()]
    left += [Path(p) for p in _processes_naming(run_id)]
    if left:
        problems.append(f"left behind: {[str(p) for p in left]}")
    result["problems"] = problems
    return result


def tally(runs: list[dict[str, Any]]) -> dict[str, Any]:
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    for r in runs:
        for nodeid, outcome in r["tests"].items():
            outcomes[nodeid][outcome] += 1
    n = len(runs)
    per_test = {}
    for nodeid, counts in sorted(outcomes.items()):
        seen = sum(counts.values())
        per_test[nodeid] = {
            "outcomes": dict(counts),
            "missing": n - seen,
            "flaky": len(counts) > 1 or (0 < seen < n),
            # Skipped (an optional step not asked for) and xfailed (a documented gap) are
            # the expected outcomes of their tests, not failures.
            "always_failing": not any(counts.get(o) for o in EXPECTED),
        }
    return {
        "runs": n,
        "flaky_tests": sorted(k for k, v in per_test.items() if v["flaky"]),
        "failing_tests": sorted(k for k, v in per_test.items() if v["always_failing"]),
        "runs_with_problems": [r["run"] for r in runs if r["problems"]],
        "runs_failed": [r["run"] for r in runs if r["exit"] != 0],
        "per_test": per_test,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.flakes", description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "flakes")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="-- then extra pytest arguments")
    args = parser.parse_args(argv)
    extra = [a for a in args.extra if a != "--"]
    args.out.mkdir(parents=True, exist_ok=True)
    suite_dir, env_dir = args.out / "runs" / "suite", args.out / "runs" / "env"
    runs = []
    started = time.monotonic()
    for i in range(1, args.runs + 1):
        r = one_run(i, args.out, extra, suite_dir, env_dir)
        runs.append(r)
        bad = {k: v for k, v in r["tests"].items() if v not in EXPECTED}
        print(
            f"run {i:2d}/{args.runs}: exit {r['exit']}, {len(r['tests'])} tests, "
            f"{r['wall_seconds']:.1f}s"
            + (f", not passed: {bad}" if bad else "")
            + (f", problems: {r['problems']}" if r["problems"] else ""),
            flush=True,
        )
    result = tally(runs)
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    result["run_details"] = runs
    (args.out / "flakes.json").write_text(json.dumps(result, indent=2))
    print(f"\n{'test':70} outcomes")
    for nodeid, t in result["per_test"].items():
        mark = " FLAKY" if t["flaky"] else (" FAILING" if t["always_failing"] else "")
        if not mark and not t["outcomes"].get("pass"):
            mark = f" ({'/'.join(t['outcomes'])} in every run)"
        print(f"{nodeid:70} {t['outcomes']}{mark}")
    print(
        f"\n{result['runs']} runs in {result['wall_seconds']:.0f}s: "
        f"{len(result['flaky_tests'])} flaky test(s), {len(result['failing_tests'])} always "
        f"failing, {len(result['runs_failed'])} run(s) not green, "
        f"{len(result['runs_with_problems'])} run(s) with problems -> {args.out / 'flakes.json'}"
    )
    ok = not (result["flaky_tests"] or result["failing_tests"] or result["runs_failed"])
    return 0 if ok and not result["runs_with_problems"] else 1


if __name__ == "__main__":
    sys.exit(main())

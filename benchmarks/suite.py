"""Suite wall time on the local target: the seed scenario and the full catalogue, serial and
under `pytest -n 2`, each a whole `pytest` process (boot to teardown), with the phase
breakdown and the time spent waiting taken from the run's own summary.json.

    python -m benchmarks.suite [--runs 3] [--which seed,full] [--modes serial,n2]
    python -m benchmarks.suite --against REV [--runs 3] [--which full] [--modes serial]

`--against REV` runs each cell of this checkout and of git revision REV (a temporary
worktree) alternately, A B A B, and prints both medians and their ratio: this machine's
speed drifts by a quarter within an hour, so a figure is compared only with one taken in
the same stretch of time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SEED_TESTS = ["tests/test_seed.py", "tests/test_teardown.py"]
MODES = {"serial": [], "n2": ["-n", "2"], "real": ["--nodes", "real"]}
"""serial and -n 2 on kwok's fake nodes; real: serial on a real node (root)."""


def run_once(paths: list[str], extra: list[str], cwd: Path = ROOT) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as reports:
        argv = [
            sys.executable,
            "-m",
            "pytest",
            *paths,
            "-q",
            "-p",
            "no:cacheprovider",
            "--signcheck-reports",
            reports,
            *extra,
        ]
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
        wall = time.perf_counter() - start
        summary_path = Path(reports) / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    tail = proc.stdout.strip().splitlines()[-1:] or ["(no output)"]
    return {
        "wall_seconds": round(wall, 2),
        "exit_code": proc.returncode,
        "result": summary.get("verdict", {}).get("sentence") or tail[0],
        "totals": summary.get("totals", {}),
        "phases": summary.get("phases", {}),
        "waiting_seconds": summary.get("waiting_seconds"),
    }


def measure(which: list[str], modes: list[str], runs: int) -> dict[str, Any]:
    suites = {"seed": SEED_TESTS, "full": ["tests"]}
    out: dict[str, Any] = {}
    for name in which:
        for mode in modes:
            samples = []
            # Alternating would mix caches between suites; runs of one kind back to back are
            # what a user sees in CI, so each cell is measured on its own.
            for _ in range(runs):
                samples.append(run_once(suites[name], MODES[mode]))
            walls = [s["wall_seconds"] for s in samples]
            out[f"{name}/{mode}"] = {
                "median_s": round(statistics.median(walls), 2),
                "min_s": min(walls),
                "max_s": max(walls),
                "runs": samples,
            }
    for name in which:
        serial, n2 = out.get(f"{name}/serial"), out.get(f"{name}/n2")
        if serial and n2:
            out[f"{name}/speedup_n2"] = round(serial["median_s"] / n2["median_s"], 2)
    return out


@contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """`rev` checked out beside this one (`python -m pytest` run there imports that
    checkout's signcheck: the working directory comes first on sys.path)."""
    with tempfile.TemporaryDirectory(prefix="signcheck-against-") as tmp:
        path = Path(tmp) / "tree"
        git = ["git", "-C", str(ROOT)]
        subprocess.run([*git, "worktree", "add", "--detach", str(path), rev], check=True)
        try:
            yield path
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(path)], check=False)


def compare(rev: str, which: list[str], modes: list[str], runs: int) -> dict[str, Any]:
    """Each cell of this checkout (`here`) and of `rev`, alternately."""
    suites = {"seed": SEED_TESTS, "full": ["tests"]}
    out: dict[str, Any] = {"against": rev}
    with worktree(rev) as other:
        for name in which:
            for mode in modes:
                samples: dict[str, list[dict[str, Any]]] = {"here": [], rev: []}
                for _ in range(runs):
                    for label, cwd in (("here", ROOT), (rev, other)):
                        sample = run_once(suites[name], MODES[mode], cwd)
                        print(f"{name}/{mode} {label}: {sample['wall_seconds']} s", flush=True)
                        samples[label].append(sample)
                medians = {
                    k: statistics.median(s["wall_seconds"] for s in v) for k, v in samples.items()
                }
                out[f"{name}/{mode}"] = {
                    "median_s": medians,
                    "ratio_here_to_against": round(medians["here"] / medians[rev], 2),
                    "median_phases_s": {k: median_phases(v) for k, v in samples.items()},
                    "runs": samples,
                }
    return out


def median_phases(samples: list[dict[str, Any]]) -> dict[str, float]:
    """Each phase's median over the runs (where the seconds moved between two revisions)."""
    names = {name for s in samples for name in s.get("phases", {})}
    return {
        name: round(statistics.median(s.get("phases", {}).get(name, 0.0) for s in samples), 1)
        for name in sorted(names)
    }


def print_table(results: dict[str, Any]) -> None:
    print(f"{'suite':<14} {'median s':>9} {'min':>7} {'max':>7}  result / phases (last run)")
    for key, cell in results.items():
        if not isinstance(cell, dict):
            print(f"{key:<14} {cell:>9}x")
            continue
        last = cell["runs"][-1]
        phases = ", ".join(f"{k} {v:.1f}" for k, v in last["phases"].items())
        print(
            f"{key:<14} {cell['median_s']:>9} {cell['min_s']:>7} {cell['max_s']:>7}  "
            f"{last['result']}"
        )
        print(f"{'':<14} waiting {last['waiting_seconds']}s of the run; {phases}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--which", default="seed,full")
    parser.add_argument("--modes", default="serial,n2", help="serial, n2, real")
    parser.add_argument(
        "--against", metavar="REV", help="also run git revision REV, alternately (A B A B)"
    )
    parser.add_argument("--out", type=Path, help="also write the results here (JSON)")
    args = parser.parse_args(argv)
    if args.against:
        results = compare(args.against, args.which.split(","), args.modes.split(","), args.runs)
        for key, cell in results.items():
            if isinstance(cell, dict):
                print(f"{key}: {cell['median_s']} (ratio {cell['ratio_here_to_against']})")
                for label, phases in cell["median_phases_s"].items():
                    print(f"  {label} phases: {phases}")
        if args.out:
            args.out.write_text(json.dumps(results, indent=2) + "\n")
        return results
    results = measure(args.which.split(","), args.modes.split(","), args.runs)
    print_table(results)
    return results


if __name__ == "__main__":
    main()

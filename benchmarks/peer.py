"""signcheck against chainsaw, Kyverno's own conformance runner, on the seed scenario.

Both run against one local environment, started once, alternately (A B A B ...), so drift in
the machine's load hits both alike; each pair's ratio is reported on its own.
- chainsaw: benchmarks/peers/seed/chainsaw-test.yaml (policy applied and Ready, signed pod
  admitted and Running, unsigned pod denied), with the images and key this benchmark pushed
  and signed once, handed over through --values;
- signcheck: the same three scenarios (SEED-04, SEED-05, SEED-06) with `--target cluster`
  against the same environment. signcheck pushes and signs its own images on every run, by
  design (unique digests keep Kyverno's verification cache from hiding a result); that cost
  is inside its figure and reported separately from its phases.
Both whole processes are timed, from exec to exit.

    python -m benchmarks.peer [--pairs 5]
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
from pathlib import Path
from typing import Any

import yaml

from benchmarks.stand import Stand
from signcheck.tools import pins

ROOT = Path(__file__).resolve().parent.parent
PEER_DIR = ROOT / "benchmarks" / "peers" / "seed"
SEED_SUBSET = "policy_ready or signed_pod_admitted or unsigned_pod_denied"


def run_chainsaw(stand: Stand, values: dict[str, Any], workdir: Path) -> dict[str, Any]:
    values_file = workdir / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    argv = [
        str(pins.path_of("chainsaw")),
        "test",
        "--test-dir",
        str(PEER_DIR),
        "--values",
        str(values_file),
        "--no-color",
        "--parallel",
        "1",
    ]
    env = {**os.environ, "KUBECONFIG": str(stand.target.kubeconfig)}
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=workdir)
    wall = time.perf_counter() - start
    passed = proc.returncode == 0 and "Passed  tests 1" in proc.stdout
    return {
        "wall_seconds": round(wall, 2),
        "passed": passed,
        "tail": "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-6:]),
    }


def run_signcheck(stand: Stand, workdir: Path) -> dict[str, Any]:
    reports = workdir / "reports"
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "tests/test_seed.py",
        "-k",
        SEED_SUBSET,
        "-q",
        "-p",
        "no:cacheprovider",
        "--target",
        "cluster",
        "--kubeconfig",
        str(stand.target.kubeconfig),
        "--registry",
        stand.target.registry.host,
        "--registry-scheme",
        "http",
        "--signcheck-reports",
        str(reports),
    ]
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    summary_path = reports / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    totals = summary.get("totals", {})
    return {
        "wall_seconds": round(wall, 2),
        "passed": proc.returncode == 0 and totals.get("pass") == 3,
        "phases": summary.get("phases", {}),
        "tail": proc.stdout.strip().splitlines()[-1:] if proc.stdout else proc.stderr[-400:],
    }


def measure(pairs: int) -> dict[str, Any]:
    with Stand() as stand, tempfile.TemporaryDirectory() as tmp:
        signed = stand.push("peer-signed", sign=True)
        unsigned = stand.push("peer-unsigned")
        rows = []
        for i in range(pairs):
            values = {
                "policy": f"peer-check-image-{i}",
                "image_glob": stand.target.registry.run_glob(stand.run_id),
                "public_key": stand.key.public_pem,
                "signed": signed.by_tag,
                "unsigned": unsigned.by_tag,
            }
            workdir = Path(tmp) / f"pair-{i}"
            workdir.mkdir()
            a = run_chainsaw(stand, values, workdir)
            b = run_signcheck(stand, workdir)
            rows.append(
                {
                    "chainsaw": a,
                    "signcheck": b,
                    "ratio": round(a["wall_seconds"] / b["wall_seconds"], 2),
                }
            )
    chainsaw = [r["chainsaw"]["wall_seconds"] for r in rows]
    signcheck = [r["signcheck"]["wall_seconds"] for r in rows]
    return {
        "pairs": rows,
        "chainsaw_median_s": statistics.median(chainsaw),
        "signcheck_median_s": statistics.median(signcheck),
        "ratio_median": statistics.median(r["ratio"] for r in rows),
        "all_passed": all(r["chainsaw"]["passed"] and r["signcheck"]["passed"] for r in rows),
    }


def print_table(results: dict[str, Any]) -> None:
    print(f"{'pair':<5} {'chainsaw s':>11} {'signcheck s':>12} {'ratio':>6}")
    for i, row in enumerate(results["pairs"]):
        ok = "" if row["chainsaw"]["passed"] and row["signcheck"]["passed"] else "  (a run FAILED)"
        print(
            f"{i:<5} {row['chainsaw']['wall_seconds']:>11} "
            f"{row['signcheck']['wall_seconds']:>12} {row['ratio']:>6}{ok}"
        )
    print(
        f"{'med':<5} {results['chainsaw_median_s']:>11} {results['signcheck_median_s']:>12} "
        f"{results['ratio_median']:>6}  (ratio = chainsaw / signcheck)"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args(argv)
    results = measure(args.pairs)
    print_table(results)
    if not results["all_passed"]:
        for row in results["pairs"]:
            for side in ("chainsaw", "signcheck"):
                if not row[side]["passed"]:
                    print(f"--- {side} failed:\n{row[side]['tail']}")
    return results


if __name__ == "__main__":
    main()

"""`pytest -n 2` gives the same results as a serial run, and the session resources (images,
keys, signatures, policies) are created once per run, not once per worker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from signcheck.places import env_runs, suite_runs

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
SELECTION = ["tests/test_seed.py", "tests/test_attacks.py", "tests/test_scoping.py"]


def _run(reports: Path, *extra: str) -> tuple[dict[str, str], dict[str, int], dict[str, float]]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *SELECTION,
            "-p",
            "no:cacheprovider",
            "-q",
            "--keep",
            "--signcheck-reports",
            str(reports),
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    summary = json.loads((reports / "summary.json").read_text())
    run_id = summary["run_id"]
    run_dir = suite_runs() / run_id
    try:
        phases = json.loads((run_dir / "phases.json").read_text())
    finally:
        # --keep kept the suite's run dir and the local environment's: remove both.
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.rmtree(env_runs() / run_id, ignore_errors=True)
    outcomes = {t["scenario"]: t["outcome"] for t in summary["tests"]}
    counts: dict[str, int] = {}
    first: dict[str, float] = {}
    for phase, start, end in phases["intervals"]:
        counts[phase] = counts.get(phase, 0) + 1
        first.setdefault(f"{phase} start", start)
        first.setdefault(f"{phase} end", end)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return outcomes, counts, first


def test_two_workers_same_results_resources_once(tmp_path: Path) -> None:
    serial, serial_counts, serial_times = _run(tmp_path / "serial")
    parallel, counts, times = _run(tmp_path / "xdist", "-n", "2")
    assert parallel == serial
    # The serial run pushes its images while its environment boots (signcheck.run.staging);
    # under xdist a worker creates them, after the owner's boot.
    assert serial_times["images start"] < serial_times["environment boot end"], serial_times
    assert times["images start"] >= times["environment boot end"], times
    # A phase may be timed in several steps (signing runs in parallel batches), but two
    # workers must not repeat any: as many steps under -n 2 as in the serial run.
    for phase in ("images", "signing", "policy ready"):
        assert serial_counts.get(phase, 0) >= 1, serial_counts
        assert counts.get(phase) == serial_counts[phase], (
            f"{phase} ran {counts.get(phase)} steps under -n 2, {serial_counts[phase]} serially"
        )

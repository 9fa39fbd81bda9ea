"""The scenario catalogue never drifts from the tests: docs/catalogue.md must be exactly what
`python -m signcheck catalogue` generates from the tests' markers and docstrings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from signcheck.report import catalogue

ROOT = Path(__file__).resolve().parents[2]


def test_committed_catalogue_matches_the_tests() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "signcheck", "catalogue", "--check", "--root", str(ROOT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (
        "docs/catalogue.md is out of date: run `python -m signcheck catalogue` and commit it\n"
        + proc.stdout
        + proc.stderr
    )


def test_every_conformance_test_has_a_unique_scenario_with_an_expectation() -> None:
    entries = catalogue.collect(ROOT)
    ids = [e.id for e in entries]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert all(e.group in catalogue.GROUPS for e in entries), ids
    missing = [e.id for e in entries if not e.expect or not e.title or not e.proves]
    assert not missing, f"scenarios without a step, a docstring or an expected outcome: {missing}"
    assert len(entries) >= 60


def test_catalogue_is_linked_from_the_readme() -> None:
    assert "docs/catalogue.md" in (ROOT / "README.md").read_text()

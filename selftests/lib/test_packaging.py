"""The wheel users install: it carries the package data signcheck reads at run time and the
pytest11 entry point that gives `pytest --help` the suite's options, and nothing of the
checkout (tests, fixtures, terraform stay at the project's top level)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    # Built from a copy of the tracked files: setuptools writes build/ next to the sources,
    # and a wheel must not pick up whatever untracked files a checkout holds.
    src = tmp_path_factory.mktemp("src")
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for rel in tracked:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("signcheck-*.whl")
    return zipfile.ZipFile(built)


def test_wheel_carries_the_package_data(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for data in (
        "signcheck/tools/pins.toml",
        "signcheck/tools/overlays/chainsaw_module_path.go",
        "signcheck/kyverno/data/seed-policy.yaml",
        "signcheck/localenv/nodeimage/pause.go",
    ):
        assert data in names, f"{data} missing from the wheel"
    # The checkout's own parts are found by signcheck.project, not shipped.
    assert not [n for n in names if n.startswith(("tests/", "fixtures/", "terraform/"))]


def test_wheel_registers_the_options_plugin(wheel: zipfile.ZipFile) -> None:
    (entry_points,) = [n for n in wheel.namelist() if n.endswith("entry_points.txt")]
    text = wheel.read(entry_points).decode()
    assert "[pytest11]" in text
    assert "signcheck.suite.options = signcheck.suite.options" in text


def test_installed_options_appear_in_pytest_help_outside_the_checkout(tmp_path: Path) -> None:
    # This environment has signcheck installed (editable): from a directory that is not the
    # checkout, pytest --help lists the options and a plain test run starts no signcheck run.
    (tmp_path / "test_x.py").write_text("def test_x():\n    assert True\n")
    help_text = subprocess.run(
        [sys.executable, "-m", "pytest", "--help"], cwd=tmp_path, capture_output=True, text=True
    ).stdout
    assert "--target={local,cluster,yandex}" in help_text
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # pytest's own bytecode cache aside, nothing was written: no run record, no reports/.
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__")
    assert left == ["test_x.py"], f"the run left files: {left}"

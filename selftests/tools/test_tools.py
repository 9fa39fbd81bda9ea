"""Lookup order, version checks, locking and the failure paths of the tool layer."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from selftests.tools.conftest import write_exe
from signcheck.errors import BuildError, ToolNotFound
from signcheck.tools import gobuild, pins

REAL_LOAD_PINS = pins.load_pins  # before any fixture patches it
REPORTS_PIN = '#!/bin/sh\necho "demo version v1.2.3"\n'
REPORTS_OTHER = '#!/bin/sh\necho "demo version v9.9.9"\n'


def test_missing_everywhere_is_missing(fake_pins: Path) -> None:
    res = pins.resolve("demo")
    assert res.source == "missing" and not res.ok
    with pytest.raises(ToolNotFound, match=r"signcheck tools build demo.*SIGNCHECK_DEMO"):
        pins.path_of("demo")


def test_path_used_only_when_version_matches(fake_pins: Path) -> None:
    write_exe(fake_pins / "pathbin" / "democtl", REPORTS_OTHER)
    res = pins.resolve("demo-ctl")
    assert res.source == "missing"
    assert any("reports v9.9.9, pinned v1.2.3" in p for p in res.problems)

    write_exe(fake_pins / "pathbin" / "democtl", REPORTS_PIN)
    res = pins.resolve("demo-ctl")
    assert (res.source, res.reported, res.ok) == ("path", "v1.2.3", True)


def test_cache_wins_over_path(fake_pins: Path) -> None:
    write_exe(fake_pins / "pathbin" / "demo", REPORTS_PIN)
    cached = write_exe(pins.group_dir(pins.group("demo")) / "bin" / "demo", REPORTS_PIN)
    res = pins.resolve("demo")
    assert (res.source, res.path) == ("cache", cached)


def test_env_override_wins_and_is_still_version_checked(
    fake_pins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_exe(pins.group_dir(pins.group("demo")) / "bin" / "demo", REPORTS_PIN)
    mine = write_exe(fake_pins / "mine" / "demo", REPORTS_OTHER)
    monkeypatch.setenv("SIGNCHECK_DEMO", str(mine))
    res = pins.resolve("demo")
    assert (res.source, res.path, res.reported) == ("env", mine, "v9.9.9")
    assert not res.ok, "a binary whose version differs from the pin must be flagged"
    with pytest.raises(ToolNotFound, match=r"reports v9\.9\.9, pinned v1\.2\.3"):
        pins.path_of("demo")


def test_env_override_pointing_nowhere(fake_pins: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNCHECK_DEMO", str(fake_pins / "nope"))
    res = pins.resolve("demo")
    assert res.source == "env" and not res.ok
    assert "does not exist" in res.problems[0]


def test_build_writes_binaries_data_and_marker(fake_go: Path, fake_pins: Path) -> None:
    gobuild.build(["demo"])
    final = pins.group_dir(pins.group("demo"))
    assert (final / "bin" / "demo").is_file() and (final / "bin" / "demo-ctl").is_file()
    assert (final / "data" / "assets" / "a.txt").read_text() == "data\n"
    assert json.loads((final / "build.json").read_text())["version"] == "v1.2.3"
    assert not list(final.parent.glob(".*partial*"))
    calls = (fake_pins / "go.log").read_text()
    assert "-X example.com/demo/version.v=v1.2.3" in calls, "version ldflags must be passed"
    assert "-trimpath" in calls
    assert pins.resolve("demo").source == "cache"


def test_build_is_idempotent(fake_go: Path, fake_pins: Path) -> None:
    gobuild.build(["demo"])
    before = (fake_pins / "go.log").read_text().count("build")
    gobuild.build(["demo-ctl"])  # same group, already complete
    assert (fake_pins / "go.log").read_text().count("build") == before


def test_failed_compile_names_step_and_tail_and_leaves_nothing(
    fake_go: Path, fake_pins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_GO_FAIL", "compile")
    with pytest.raises(BuildError) as info:
        gobuild.build(["demo"])
    err = info.value
    assert "step 'compile demo' failed (go exited 2)" in err.message
    assert "undefined: frobnicate" in err.details
    final = pins.group_dir(pins.group("demo"))
    assert not final.exists()
    assert not list(final.parent.glob(".*partial*")), "no half-written build may remain"


def test_failed_download_names_step(
    fake_go: Path, fake_pins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_GO_FAIL", "download")
    with pytest.raises(BuildError, match=r"step 'download example.com/demo@v1.2.3' failed"):
        gobuild.build(["demo"])


def test_build_whose_binary_lies_about_its_version_is_rejected(
    fake_go: Path, fake_pins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_GO_REPORTS", "v0.0.1")
    with pytest.raises(BuildError, match=r"reports v0\.0\.1, pinned v1\.2\.3"):
        gobuild.build(["demo"])
    assert not pins.group_dir(pins.group("demo")).exists()


def test_concurrent_builds_wait_for_the_lock_and_compile_once(
    fake_go: Path, fake_pins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_GO_SLEEP", "0.5")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            gobuild.build(["demo"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    builds = [c for c in (fake_pins / "go.log").read_text().splitlines() if c.startswith("build")]
    assert len(builds) == 2, f"each binary compiled once, got {builds}"


def test_no_go_is_one_clear_error_naming_what_still_works(
    fake_pins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNCHECK_GO", str(fake_pins / "no-such-go"))
    write_exe(fake_pins / "pathbin" / "democtl", REPORTS_PIN)
    with pytest.raises(ToolNotFound) as info:
        gobuild.build(["demo"])
    msg = info.value.message
    assert "no Go toolchain found" in msg and "Go 1.21.0 or newer" in msg
    assert "Usable right now: demo-ctl" in msg


def test_old_go_is_named(fake_go: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_GO_VERSION", "go1.20.3")
    with pytest.raises(ToolNotFound, match=r"Go 1\.20\.3 is too old.*1\.21\.0"):
        gobuild.build(["demo"])


def test_ensure_never_replaces_a_broken_override(
    fake_go: Path, fake_pins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNCHECK_DEMO", str(write_exe(fake_pins / "x" / "demo", REPORTS_OTHER)))
    with pytest.raises(ToolNotFound):
        gobuild.ensure(["demo"])
    assert not (fake_pins / "go.log").exists(), "nothing may be built behind the user's back"


def test_staging_replaces_cover_every_staging_module() -> None:
    gomod = (
        "replace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n"
        "\tk8s.io/kubectl => ./staging/src/k8s.io/kubectl\n\tfoo => bar v1\n)\n"
    )
    assert gobuild.staging_replaces(gomod, "v1.35.4") == [
        "k8s.io/api => k8s.io/api v0.35.4",
        "k8s.io/kubectl => k8s.io/kubectl v0.35.4",
    ]


def test_real_pins_are_well_formed() -> None:
    groups = pins.load_pins()
    names = [b.name for g in groups for b in g.binaries]
    assert len(names) == len(set(names)), "tool names must be unique"
    for g in groups:
        assert g.version.startswith("v"), g.name
        for flag in g.expanded_ldflags():
            assert "{" not in flag, flag


def test_list_json_cli(fake_pins: Path) -> None:
    write_exe(pins.group_dir(pins.group("demo")) / "bin" / "demo", REPORTS_PIN)
    from signcheck.cli import main

    assert main(["tools", "list", "demo"]) == 0
    assert main(["tools", "list", "demo-ctl"]) == 1, "a missing tool makes list fail"


def test_buildinfo_of_a_real_go_binary(tmp_path: Path) -> None:
    go = gobuild.go_binary()
    if not go:
        pytest.skip("needs a Go toolchain to compile a tiny binary")
    src = tmp_path / "m"
    src.mkdir()
    (src / "go.mod").write_text("module example.com/tiny\n\ngo 1.21\n")
    (src / "main.go").write_text("package main\n\nfunc main() {}\n")
    subprocess.run(
        [go, "build", "-o", str(tmp_path / "tiny")], cwd=src, check=True, env=gobuild.go_env()
    )
    from signcheck.tools import buildinfo

    assert "path\texample.com/tiny" in buildinfo.read_modinfo(tmp_path / "tiny")
    assert buildinfo.read_modinfo(Path(sys.executable)) == ""


def test_overlay_files_patch_a_private_copy_of_the_module(
    fake_go: Path, fake_pins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups = REAL_LOAD_PINS(FAKE_PINS_OVERLAY)
    monkeypatch.setattr(pins, "load_pins", lambda text=None: groups)
    seen: list[str] = []
    real_run = gobuild.GoRunner.run

    def spy(self: gobuild.GoRunner, step: str, args: list[str]) -> str:
        if args[0] == "build":
            seen.append((self.workdir / "go.mod").read_text())
            patched = self.workdir / "patched-src" / "pkg" / "x" / "fix.go"
            seen.append(patched.read_text())
        return real_run(self, step, args)

    monkeypatch.setattr(gobuild.GoRunner, "run", spy)
    gobuild.build(["demo"])
    assert "example.com/demo => ./patched-src" in seen[0]
    assert "func (*TestDeps) ModulePath() string" in seen[1]
    final = pins.group_dir(pins.group("demo"))
    assert not (final / "module").exists(), "the wrapper module is not kept"


FAKE_PINS_OVERLAY = """
[demo]
module = "example.com/demo"
version = "v1.2.3"
go = "1.21.0"
overlay = { "pkg/x/fix.go" = "overlays/chainsaw_module_path.go" }
binaries.demo = { package = "example.com/demo/cmd/demo", probe = ["--version"] }
"""


def test_a_reader_that_goes_away_ends_the_cli_quietly(fake_pins: Path) -> None:
    """`signcheck tools list | head -1`: the pipe closes under the CLI; no traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "signcheck", "tools", "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the interpreter has started: its first write meets no reader
    stderr = proc.stderr.read()
    assert proc.wait(timeout=60) == 141, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr

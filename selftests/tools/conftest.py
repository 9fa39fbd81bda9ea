"""Fixtures for the tool layer: a fake pins table, a private cache, and a fake `go`.

Nothing here builds a real tool: the fake go writes small shell scripts as "binaries" that
print the version they were told to, so lookup, version checks, locking and failures can be
tested in milliseconds.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from signcheck.tools import pins

FAKE_PINS = """
[demo]
module = "example.com/demo"
version = "v1.2.3"
go = "1.21.0"
ldflags = ["-X example.com/demo/version.v={version}"]
data = ["assets"]
binaries.demo = { package = "example.com/demo/cmd/demo", probe = ["--version"] }
[demo.binaries.demo-ctl]
package = "example.com/demo/cmd/ctl"
command = "democtl"
probe = ["version"]
"""

FAKE_GO = r"""#!/usr/bin/env bash
# A stand-in for the go command: records each call, then behaves as told by FAKE_GO_* vars.
echo "$*" >> "$FAKE_GO_LOG"
case "$1" in
  env) echo "${FAKE_GO_VERSION:-go1.26.8}"; exit 0 ;;
  mod)
    if [ "$FAKE_GO_FAIL" = download ]; then echo "proxy said no" >&2; exit 1; fi
    mkdir -p "$FAKE_GO_SRC/assets"; echo data > "$FAKE_GO_SRC/assets/a.txt"
    echo 'module example.com/demo' > "$FAKE_GO_SRC/go.mod"
    printf '{"Path":"example.com/demo","Version":"v1.2.3","Dir":"%s","GoMod":"%s/go.mod"}\n' \
      "$FAKE_GO_SRC" "$FAKE_GO_SRC"
    exit 0 ;;
  get) exit 0 ;;
  build)
    if [ "$FAKE_GO_FAIL" = compile ]; then
      echo "example.com/demo/internal/x"
      echo "compile: undefined: frobnicate" >&2
      for i in $(seq 1 50); do echo "example.com/demo/pkg/line$i"; done
      exit 2
    fi
    out=""; while [ $# -gt 0 ]; do [ "$1" = -o ] && out="$2"; shift; done
    sleep "${FAKE_GO_SLEEP:-0}"
    mkdir -p "$(dirname "$out")"
    printf '#!/bin/sh\necho "demo version %s"\n' "${FAKE_GO_REPORTS:-v1.2.3}" > "$out"
    chmod +x "$out"; exit 0 ;;
esac
echo "fake go: unexpected $*" >&2; exit 3
"""


def write_exe(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def fake_pins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    groups = pins.load_pins(FAKE_PINS)
    monkeypatch.setattr(pins, "load_pins", lambda text=None: groups)
    monkeypatch.setenv("SIGNCHECK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "pathbin") + os.pathsep + "/usr/bin:/bin")
    for name in ("SIGNCHECK_DEMO", "SIGNCHECK_DEMO_CTL"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "pathbin").mkdir()
    yield tmp_path


@pytest.fixture
def fake_go(fake_pins: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    go = write_exe(fake_pins / "gobin" / "go", FAKE_GO)
    monkeypatch.setenv("SIGNCHECK_GO", str(go))
    monkeypatch.setenv("FAKE_GO_LOG", str(fake_pins / "go.log"))
    monkeypatch.setenv("FAKE_GO_SRC", str(fake_pins / "src"))
    monkeypatch.setenv("FAKE_GO_FAIL", "")
    return go

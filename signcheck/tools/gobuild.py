"""Build pinned tools from their Go modules into the tool cache.

Each group gets a throw-away wrapper module (its own go.mod: the pinned module, the replace
lines it needs), so one tool's dependency graph never shifts another's. Builds happen in a
private staging directory and are renamed into place only when every binary reports its pin:
an interrupted or failed build leaves nothing half-written. A per-group file lock makes
concurrent builds (two shells, two xdist workers) wait for each other instead of racing.
"""

from __future__ import annotations

import collections
import fcntl
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from signcheck import places
from signcheck.errors import BuildError, ToolNotFound
from signcheck.progress import Progress
from signcheck.tools import pins

_PACKAGE_LINE = re.compile(r"^[\w.~-]+(/[\w.~+-]+)*$")
_GO_VERSION_RE = re.compile(r"go(\d+)\.(\d+)(?:\.(\d+))?")


def parse_go_version(text: str) -> tuple[int, int, int] | None:
    match = _GO_VERSION_RE.search(text)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def _version_tuple(text: str) -> tuple[int, int, int]:
    parsed = parse_go_version("go" + text)
    assert parsed, text
    return parsed


def go_binary() -> str:
    return os.environ.get("SIGNCHECK_GO") or shutil.which("go") or ""


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(CGO_ENABLED="0", GOWORK="off", GO111MODULE="on", GOFLAGS="-mod=mod")
    return env


def check_go(groups: Sequence[pins.Group]) -> str:
    """The go command to use, or one error naming what to install and what still works."""
    go = go_binary()
    need = max((_version_tuple(g.go) for g in groups), default=(0, 0, 0))
    need_text = ".".join(map(str, need))
    have: tuple[int, int, int] | None = None
    if go:
        try:
            out = subprocess.run(
                [go, "env", "GOVERSION"], capture_output=True, text=True, timeout=60, env=go_env()
            ).stdout
            have = parse_go_version(out)
        except (OSError, subprocess.TimeoutExpired):
            have = None
    if have is not None and have >= need:
        return go
    usable = [r.name for r in pins.resolve_many() if r.ok]
    still = ", ".join(usable) if usable else "none"
    if have is None:
        problem = "no Go toolchain found (looked at $SIGNCHECK_GO and PATH)"
    else:
        problem = f"Go {'.'.join(map(str, have))} is too old"
    raise ToolNotFound(
        f"{problem}: building the pinned tools needs Go {need_text} or newer. "
        f"Install Go >= {need_text} (https://go.dev/dl) or set GOTOOLCHAIN=go{need_text}, "
        f"or point SIGNCHECK_<TOOL> at prebuilt binaries. Usable right now: {still}."
    )


@contextmanager
def group_lock(g: pins.Group, progress: Progress | None = None) -> Iterator[None]:
    lock_path = places.cache_root() / "tools" / g.name / ".lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress:
                progress.step("waiting for another build of this tool to finish")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def is_complete(g: pins.Group) -> bool:
    final = pins.group_dir(g)
    marker = final / "build.json"
    if not marker.is_file():
        return False
    return all((final / "bin" / b.name).is_file() for b in g.binaries)


class GoRunner:
    """Runs go commands, feeding each output line to the progress display, keeping a tail."""

    def __init__(self, go: str, progress: Progress, workdir: Path) -> None:
        self.go = go
        self.progress = progress
        self.workdir = workdir
        self.env = go_env()

    def run(self, step: str, args: Sequence[str]) -> str:
        self.progress.step(step)
        argv = [self.go, *args]
        tail: collections.deque[str] = collections.deque(maxlen=40)
        out: list[str] = []
        proc = subprocess.Popen(
            argv,
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                out.append(line)
                # `go build -v` names every package it compiles; those lines would push the
                # compiler's error out of the tail the user sees, so only the rest is kept.
                if not _PACKAGE_LINE.match(line):
                    tail.append(line)
                self.progress.activity(line)
            code = proc.wait()
        except BaseException:
            # Ctrl-C: take the whole go process group down with us, leave nothing running.
            os.killpg(proc.pid, 9)
            proc.wait()
            raise
        if code != 0:
            raise BuildError(
                f"step '{step}' failed (go exited {code})",
                "command: " + " ".join(argv) + "\n" + "\n".join(tail),
            )
        return "\n".join(out)


def _go_mod(g: pins.Group, extra_replace: Sequence[str]) -> str:
    lines = [f"module signcheck.local/wrap/{g.name}", "", f"go {g.go}", ""]
    replaces = [*g.replace, *extra_replace]
    if replaces:
        lines.append("replace (")
        lines.extend("\t" + r for r in replaces)
        lines.append(")")
    return "\n".join(lines) + "\n"


def _module_download(runner: GoRunner, module: str, version: str) -> dict[str, str]:
    out = runner.run(
        f"download {module}@{version}", ["mod", "download", "-json", f"{module}@{version}"]
    )
    start = out.find("{")
    info: dict[str, str] = json.loads(out[start:])
    if info.get("Error"):
        raise BuildError(f"cannot download {module}@{version}: {info['Error']}")
    return info


def staging_replaces(gomod_text: str, version: str) -> list[str]:
    """`k8s.io/x => k8s.io/x v0.<minor>.<patch>` for every staging module k8s.io/kubernetes
    points at its own tree (those relative replaces do not apply to a dependency)."""
    published = "v0." + version.lstrip("v").split(".", 1)[1]
    found = []
    for line in gomod_text.splitlines():
        match = re.match(r"\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", line)
        if match:
            found.append(f"{match.group(1)} => {match.group(1)} {published}")
    return found


def _patched_source(g: pins.Group, module_dir: Path, work: Path) -> list[str]:
    """For groups with overlay files: a writable copy of the module (in the build's own
    staging area, never in the project) with the files added, and the replace line to use it.

    `go build -overlay` cannot do this: Go refuses overlays beneath the module cache.
    """
    if not g.overlay:
        return []
    src = work / "patched-src"
    shutil.copytree(module_dir, src)
    for path in [src, *src.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    package = resources.files("signcheck.tools")
    for rel, ours in g.overlay:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(package.joinpath(ours).read_bytes())
    return [f"{g.module} => ./patched-src"]


def build_group(g: pins.Group, go: str, force: bool = False) -> Path:
    final = pins.group_dir(g)
    with Progress(f"{g.name} {g.version}") as progress, group_lock(g, progress):
        if is_complete(g) and not force:
            progress.step("already built")
            return final
        parent = final.parent
        for leftover in parent.glob(f".{g.version}.partial-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        stage = parent / f".{g.version}.partial-{os.getpid()}"
        work = stage / "module"
        work.mkdir(parents=True)
        try:
            runner = GoRunner(go, progress, work)
            info = _module_download(runner, g.module, g.version)
            extra: list[str] = []
            if g.staging:
                extra = staging_replaces(Path(info["GoMod"]).read_text(), g.version)
            extra += _patched_source(g, Path(info["Dir"]), work)
            (work / "go.mod").write_text(_go_mod(g, extra))
            pkgs = [f"{b.package}@{g.version}" for b in g.binaries]
            runner.run("resolve dependencies", ["get", *pkgs])
            ldflags = " ".join(["-s", "-w", *g.expanded_ldflags()])
            for b in g.binaries:
                out = stage / "bin" / b.name
                runner.run(
                    f"compile {b.name}",
                    [
                        "build",
                        "-trimpath",
                        "-v",
                        "-ldflags",
                        ldflags,
                        *(["-tags", ",".join(g.tags)] if g.tags else []),
                        "-o",
                        str(out),
                        b.package,
                    ],
                )
            for rel in g.data:
                progress.step(f"copy {rel}")
                shutil.copytree(Path(info["Dir"]) / rel, stage / "data" / rel)
                for path in (stage / "data" / rel).rglob("*"):
                    # The module cache is read-only; the copy must be removable.
                    path.chmod(0o755 if path.is_dir() else 0o644)
            progress.step("verify versions")
            for b in g.binaries:
                reported = pins.probe_version(b, stage / "bin" / b.name)
                if reported is None or not pins.same_version(reported, g.version):
                    raise BuildError(
                        f"step 'verify versions' failed: {b.name} reports "
                        f"{reported or 'no version'}, pinned {g.version}"
                    )
            shutil.rmtree(work)
            (stage / "build.json").write_text(
                json.dumps(
                    {
                        "group": g.name,
                        "module": g.module,
                        "version": g.version,
                        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "seconds": round(time.monotonic() - progress.started, 1),
                    },
                    indent=2,
                )
            )
            if final.exists():
                shutil.rmtree(final)
            stage.rename(final)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
    return final


def groups_for(names: Sequence[str]) -> list[pins.Group]:
    """Groups that contain the named tools (or group names); all groups when none named."""
    if not names:
        return list(pins.load_pins())
    chosen: dict[tuple[str, str], pins.Group] = {}
    for name in names:
        g = pins.group_or_tool_group(name)
        chosen[(g.name, g.version)] = g
    return list(chosen.values())


def build(names: Sequence[str] = (), force: bool = False) -> list[Path]:
    groups = groups_for(names)
    todo = [g for g in groups if force or not is_complete(g)]
    if not todo:
        return [pins.group_dir(g) for g in groups]
    go = check_go(todo)
    return [build_group(g, go, force=force) for g in groups]


def ensure(names: Sequence[str]) -> dict[str, Path]:
    """Paths of the named tools, building the missing ones first (the suite's entry point).

    An env override or a matching PATH binary is used as is and never triggers a build.
    """
    resolved = [pins.resolve(n) for n in names]
    for res in resolved:
        if res.source == "env" and not res.ok:
            pins.path_of(res.name)  # raises: an explicit override is never silently replaced
    missing = [r.name for r in resolved if not r.ok]
    if missing:
        build(missing)
    return {n: pins.path_of(n) for n in names}

"""Pinned tools: what signcheck tests with, where each binary comes from, and its version.

Lookup order for every tool (first hit wins):
  1. `SIGNCHECK_<NAME>` (a path; NAME upper-cased, '-' as '_'), taken as the user's choice
     but still version-checked and flagged when it differs from the pin;
  2. the tool cache (`$SIGNCHECK_CACHE` or `$XDG_CACHE_HOME/signcheck` or `~/.cache/signcheck`),
     `tools/<group>/<version>/bin/<name>`;
  3. PATH, only when the binary there reports the pinned version;
  4. otherwise the tool is missing and `signcheck tools build` builds it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from signcheck import places
from signcheck.errors import ConfigError, ToolNotFound
from signcheck.tools import buildinfo

Source = Literal["env", "cache", "path", "missing"]

_VERSION_RE = re.compile(r"v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?)")


@dataclass(frozen=True)
class Binary:
    name: str
    group: str
    package: str
    command: str
    probe: tuple[str, ...] | Literal["buildinfo"]


@dataclass(frozen=True)
class Group:
    """One wrapper Go module: a pinned upstream module and the binaries built from it."""

    name: str
    module: str
    version: str
    go: str
    binaries: tuple[Binary, ...]
    replace: tuple[str, ...] = ()
    staging: bool = False
    ldflags: tuple[str, ...] = ()
    data: tuple[str, ...] = ()
    overlay: tuple[tuple[str, str], ...] = ()
    tags: tuple[str, ...] = ()
    why: str = ""
    also: tuple[tuple[str, dict[str, Any]], ...] = ()
    """Further pinned versions: (version, what differs from the default: go, replace, why)."""

    @property
    def versions(self) -> tuple[str, ...]:
        """The default version first, then the others as pinned."""
        return (self.version, *(v for v, _ in self.also))

    def at(self, version: str) -> Group:
        """This group at one of its pinned versions."""
        if version == self.version:
            return self
        for v, body in self.also:
            if v == version:
                return replace(
                    self,
                    version=v,
                    go=body.get("go", self.go),
                    replace=tuple(body.get("replace", self.replace)),
                    why=body.get("why", self.why),
                    also=(),
                )
        raise ConfigError(
            f"{self.name} {version} is not pinned; pinned versions: {', '.join(self.versions)}"
        )

    def expanded_ldflags(self) -> list[str]:
        bare = self.version.lstrip("v")
        major, minor = [*bare.split("."), "0", "0"][:2]
        values = {"version": self.version, "bare": bare, "major": major, "minor": minor}
        return [flag.format(**values) for flag in self.ldflags]


@dataclass
class Resolved:
    """Where a tool was found and what it says about itself."""

    name: str
    group: str
    pinned: str
    source: Source
    path: Path | None = None
    reported: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.path is not None and not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "pinned": self.pinned,
            "source": self.source,
            "path": str(self.path) if self.path else None,
            "reported": self.reported,
            "matches_pin": self.reported is not None and same_version(self.reported, self.pinned),
            "ok": self.ok,
            "problems": self.problems,
        }


def same_version(reported: str, pinned: str) -> bool:
    return reported.lstrip("v") == pinned.lstrip("v")


@cache
def load_pins(text: str | None = None) -> tuple[Group, ...]:
    if text is None:
        text = resources.files("signcheck.tools").joinpath("pins.toml").read_text()
    raw = tomllib.loads(text)
    groups = []
    for gname, body in raw.items():
        binaries = tuple(
            Binary(
                name=bname,
                group=gname,
                package=b["package"],
                command=b.get("command", bname),
                probe="buildinfo" if b["probe"] == "buildinfo" else tuple(b["probe"]),
            )
            for bname, b in body["binaries"].items()
        )
        groups.append(
            Group(
                name=gname,
                module=body["module"],
                version=body["version"],
                go=body["go"],
                binaries=binaries,
                replace=tuple(body.get("replace", ())),
                staging=bool(body.get("staging", False)),
                ldflags=tuple(body.get("ldflags", ())),
                data=tuple(body.get("data", ())),
                overlay=tuple(body.get("overlay", {}).items()),
                tags=tuple(body.get("tags", ())),
                why=body.get("why", ""),
                also=tuple(body.get("also", {}).items()),
            )
        )
    return tuple(groups)


def version_var(group_name: str) -> str:
    return "SIGNCHECK_" + group_name.upper().replace("-", "_") + "_VERSION"


def group(name: str, version: str | None = None) -> Group:
    """The group `name` at `version`, else at the version selected for this process
    (`SIGNCHECK_<GROUP>_VERSION`), else at its default."""
    g = _default(name)
    wanted = version or (os.environ.get(version_var(name)) if g.also else None)
    return g.at(wanted) if wanted else g


def pinned_versions(group_name: str) -> tuple[str, ...]:
    """Every pinned version of a group, the default first."""
    return _default(group_name).versions


def split_versioned(name: str) -> tuple[str, str | None]:
    """`kyverno@v1.18.2` -> ("kyverno", "v1.18.2"); a plain name has no version."""
    base, _, version = name.partition("@")
    return base, version or None


def group_or_tool_group(name: str) -> Group:
    """A group by its name or one of its tools' names, `@version` allowed."""
    base, version = split_versioned(name)
    try:
        return group(base, version)
    except KeyError:
        return group(binary(base).group, version)


def binary(name: str) -> Binary:
    for g in load_pins():
        for b in g.binaries:
            if b.name == name:
                return b
    known = ", ".join(b.name for g in load_pins() for b in g.binaries)
    raise ToolNotFound(f"unknown tool {name!r}; known tools: {known}")


def all_binaries() -> list[Binary]:
    return [b for g in load_pins() for b in g.binaries]


def expand_names(names: Iterable[str]) -> list[str]:
    """Tool names for a mix of tool and group names; every tool when none are given."""
    wanted = list(names)
    if not wanted:
        return [b.name for b in all_binaries()]
    out: list[str] = []
    for name in wanted:
        # A tool name wins over a group of the same name (kyverno is both).
        base, version = split_versioned(name)
        at = f"@{version}" if version else ""
        if any(b.name == base for b in all_binaries()):
            out.append(name)
        elif version:
            out.extend(b.name + at for b in group_or_tool_group(name).binaries)
        elif any(b.name == name for b in all_binaries()):
            out.append(name)
        else:
            out.extend(b.name for b in group_or_tool_group(name).binaries)
    return out


def group_dir(g: Group) -> Path:
    return places.cache_root() / "tools" / g.name / g.version


def data_dir(group_name: str, version: str | None = None) -> Path:
    """Data copied from a group's module (CRDs, charts, kwok stages), next to its binaries."""
    return group_dir(group(group_name, version)) / "data"


def env_var(name: str) -> str:
    return "SIGNCHECK_" + name.upper().replace("-", "_")


def probe_version(b: Binary, path: Path, timeout: float = 20.0) -> str | None:
    """The version the binary reports, normalised to the pin's form, or None."""
    if b.probe == "buildinfo":
        return buildinfo.module_version(path, group(b.group).module)
    try:
        proc = subprocess.run(
            [str(path), *b.probe],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "HOME": os.environ.get("HOME", "/tmp")},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in (proc.stdout + "\n" + proc.stderr).splitlines():
        # Kustomize's version sits beside kubectl's; only the first version of a line counts.
        if "kustomize" in line.lower():
            continue
        match = _VERSION_RE.search(line)
        if match:
            return "v" + match.group(1)
    return None


def _check(res: Resolved, b: Binary) -> Resolved:
    assert res.path is not None
    if not os.access(res.path, os.X_OK):
        res.problems.append(f"{res.path} is not executable")
        return res
    res.reported = probe_version(b, res.path)
    if res.reported is None:
        res.problems.append(f"{res.path} did not report a version")
    elif not same_version(res.reported, res.pinned):
        res.problems.append(f"{res.path} reports {res.reported}, pinned {res.pinned}")
    return res


def resolve(name: str) -> Resolved:
    """Find one tool (`name` or `name@version`) by the documented lookup order and check
    its version."""
    base, version = split_versioned(name)
    b = binary(base)
    g = group(b.group, version)
    res = Resolved(name=name, group=g.name, pinned=g.version, source="missing")
    if override := os.environ.get(env_var(base)):
        res.source, res.path = "env", Path(override)
        if not res.path.is_file():
            res.problems.append(f"{env_var(base)}={override} does not exist")
            return res
        return _check(res, b)
    cached = group_dir(g) / "bin" / base
    if cached.is_file():
        res.source, res.path = "cache", cached
        return _check(res, b)
    on_path = shutil.which(b.command)
    if on_path:
        candidate = Resolved(name, g.name, g.version, "path", Path(on_path))
        _check(candidate, b)
        if candidate.ok:
            return candidate
        # A PATH binary at another version is reported but never used.
        res.problems.append(
            f"{on_path} on PATH reports {candidate.reported or 'no version'}, pinned {g.version}"
        )
    return res


def resolve_many(names: Iterable[str] | None = None) -> list[Resolved]:
    wanted = list(names) if names else [b.name for b in all_binaries()]
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(resolve, wanted))


def _build_name(name: str, res: Resolved) -> str:
    """What to pass to `signcheck tools build`: the version only when not the default."""
    base = split_versioned(name)[0]
    default = _default(res.group)
    return base if res.pinned == default.version else f"{base}@{res.pinned}"


def _default(group_name: str) -> Group:
    for g in load_pins():
        if g.name == group_name:
            return g
    raise KeyError(group_name)


def path_of(name: str) -> Path:
    """The verified binary for `name` (or `name@version`), or one error saying how to get
    it."""
    res = resolve(name)
    if res.ok and res.path is not None:
        return res.path
    why = "; ".join(res.problems) or "not in the cache or on PATH"
    raise ToolNotFound(
        f"{name} {res.pinned} is not available ({why}). Run `signcheck tools build "
        f"{_build_name(name, res)}` or set {env_var(split_versioned(name)[0])} to a binary of "
        "that version."
    )

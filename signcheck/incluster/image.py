"""The suite as an OCI image, built without a container engine.

Four layers, each cached on disk by what goes into it, so a second build only remakes the
layers whose inputs changed (usually the last one):

1. a Debian root file system (bookworm: its Python is the 3.11 this suite runs on) made by
   Debian's `mmdebstrap` from Debian's packages, `python3` and `ca-certificates` only;
2. the suite's Python dependencies, installed by this machine's pip into
   `/usr/local/lib/python3.11/dist-packages` at the versions this machine runs (a constraints
   file from `pip freeze`): the same interpreter and C library, so the same wheels;
3. the pinned cosign binaries where the suite's tool lookup finds them
   (`$SIGNCHECK_CACHE/tools/<group>/<version>/bin/`);
4. signcheck itself (its wheel) and the checkout's `tests/`, `conftest.py`, `fixtures/` and
   `pytest.ini` under `/opt/signcheck`, the working directory.

The entrypoint is `signcheck.incluster.entrypoint` (the Sonobuoy plugin contract).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from signcheck import places
from signcheck.clients.ociimage import CONFIG_OCI, LAYER_TAR_GZIP, Blob, manifest_for
from signcheck.errors import ConfigError, ToolNotFound

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "ca-certificates")
SITE = "usr/local/lib/python3.11/dist-packages"
WORKDIR = "opt/signcheck"
CHECKOUT_PARTS = ("tests", "conftest.py", "fixtures", "pytest.ini", "pyproject.toml")
COSIGN_TOOLS = ("cosign-v2", "cosign-v3")
REPOSITORY = "signcheck-suite"
"""Where under the registry's run prefix the image goes (`<prefix>/signcheck-suite`)."""
ENV = {
    "SIGNCHECK_CACHE": f"/{WORKDIR}/cache",
    "SIGNCHECK_RUN_DIR": "/tmp/signcheck-runs",
    "HOME": "/tmp",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
}


@dataclass(frozen=True)
class Layer:
    gz: Path
    """The gzip'd tar (the blob)."""
    diff_id: str
    """sha256 of the uncompressed tar, as the image config names it."""

    def blob(self) -> Blob:
        return Blob(LAYER_TAR_GZIP, self.gz.read_bytes())


@dataclass(frozen=True)
class SuiteImage:
    config: Blob
    layers: tuple[Layer, ...]
    manifest: bytes


def cache_dir() -> Path:
    path = places.cache_root() / "incluster"
    path.mkdir(parents=True, exist_ok=True)
    return path


def build(checkout: Path, progress: Callable[[str], None] = print) -> SuiteImage:
    """Every layer (from the cache when its inputs did not change), the config, the manifest."""
    layers = (
        _rootfs(progress),
        _dependencies(checkout, progress),
        _tools(progress),
        _suite(checkout, progress),
    )
    config_doc = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": ["/usr/bin/python3", "-m", "signcheck.incluster.entrypoint"],
            "WorkingDir": f"/{WORKDIR}",
            "Env": [f"{k}={v}" for k, v in ENV.items()]
            + ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Labels": {"io.signcheck.image": "suite"},
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created_by": "signcheck.incluster.image"}],
    }
    config = Blob(CONFIG_OCI, json.dumps(config_doc, sort_keys=True).encode())
    # The manifest needs each layer's digest and size only: read from the cached files.
    descriptors = [_descriptor(layer) for layer in layers]
    manifest = manifest_for(config, [])
    manifest["layers"] = descriptors
    return SuiteImage(config, layers, json.dumps(manifest, sort_keys=True).encode())


def _descriptor(layer: Layer) -> dict[str, object]:
    digest = hashlib.sha256(layer.gz.read_bytes()).hexdigest()
    return {
        "mediaType": LAYER_TAR_GZIP,
        "digest": f"sha256:{digest}",
        "size": layer.gz.stat().st_size,
    }


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:16]


def _cached(
    name: str, key: str, make: Callable[[Path], None], progress: Callable[[str], None]
) -> Layer:
    """`<cache>/<name>-<key>.tar.gz` and its diff id, made by `make(tar_path)` when absent."""
    gz = cache_dir() / f"{name}-{key}.tar.gz"
    diff = gz.with_suffix(".diffid")
    if gz.is_file() and diff.is_file():
        return Layer(gz, diff.read_text().strip())
    progress(f"building the {name} layer (cached afterwards: {gz})")
    with tempfile.TemporaryDirectory(prefix=f"signcheck-{name}-", dir=cache_dir()) as tmp:
        tar_path = Path(tmp) / "layer.tar"
        make(tar_path)
        sha = hashlib.sha256()
        part = Path(tmp) / "layer.tar.gz"
        with tar_path.open("rb") as src, gzip.GzipFile(part, "wb", mtime=0, compresslevel=6) as dst:
            while chunk := src.read(1 << 20):
                sha.update(chunk)
                dst.write(chunk)
        part.replace(gz)
    diff.write_text(f"sha256:{sha.hexdigest()}\n")
    return Layer(gz, f"sha256:{sha.hexdigest()}")


def _rootfs(progress: Callable[[str], None]) -> Layer:
    tool = shutil.which("mmdebstrap")
    key = _key(SUITE, MIRROR, PACKAGES)

    def make(tar_path: Path) -> None:
        if tool is None:
            raise ToolNotFound(
                "mmdebstrap is not installed: the suite image's Debian root file system is "
                "made with it (apt-get install mmdebstrap)"
            )
        cmd = [
            tool,
            "--variant=essential",
            f"--include={','.join(PACKAGES)}",
            "--quiet",
            SUITE,
            str(tar_path),
            MIRROR,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ConfigError(
                f"mmdebstrap could not make the root file system from {MIRROR} "
                f"(exit {proc.returncode})",
                proc.stderr[-3000:],
            )

    return _cached("rootfs", key, make, progress)


def _pip(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ConfigError(f"pip {args[0]} for the suite image failed", proc.stderr[-3000:])
    return proc.stdout


def _wheel(checkout: Path, into: Path) -> Path:
    _pip("wheel", "--no-deps", "--quiet", "-w", str(into), str(checkout))
    return next(into.glob("signcheck-*.whl"))


def _dependencies(checkout: Path, progress: Callable[[str], None]) -> Layer:
    frozen = "\n".join(
        line
        for line in _pip("freeze", "--exclude-editable").splitlines()
        if line and not line.startswith(("-e ", "signcheck"))
    )
    pyproject = (checkout / "pyproject.toml").read_bytes()
    key = _key(frozen, hashlib.sha256(pyproject).hexdigest(), sys.version)

    def make(tar_path: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="signcheck-deps-") as tmp:
            constraints = Path(tmp) / "constraints.txt"
            constraints.write_text(frozen + "\n")
            wheel = _wheel(checkout, Path(tmp) / "wheel")
            target = Path(tmp) / "root" / SITE
            # The dependencies only: signcheck itself goes in the last layer, which changes.
            _pip("install", "--quiet", "--target", str(target), "-c", str(constraints), str(wheel))
            for leftover in target.glob("signcheck*"):
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
            _tar_tree(Path(tmp) / "root", tar_path)

    return _cached("python", key, make, progress)


def _tools(progress: Callable[[str], None]) -> Layer:
    from signcheck.tools import pins

    found = [pins.resolve(name) for name in COSIGN_TOOLS]
    missing = [r for r in found if not r.ok]
    if missing:
        raise ToolNotFound(
            f"{', '.join(r.name for r in missing)} not built: the suite image carries the "
            f"pinned cosign; run signcheck tools build {' '.join(r.name for r in missing)}"
        )
    key = _key(*(f"{r.name}={r.pinned}:{r.path}:{r.path.stat().st_size}" for r in found if r.path))

    def make(tar_path: Path) -> None:
        with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
            for res in found:
                assert res.path is not None
                rel = res.path.relative_to(places.cache_root())
                _add(tar, f"{WORKDIR}/cache/{rel.as_posix()}", res.path.read_bytes(), 0o755)

    return _cached("tools", key, make, progress)


def _suite(checkout: Path, progress: Callable[[str], None]) -> Layer:
    files: dict[str, bytes] = {}
    for part in CHECKOUT_PARTS:
        path = checkout / part
        paths = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for p in paths:
            if "__pycache__" not in p.parts:
                files[f"{WORKDIR}/{p.relative_to(checkout).as_posix()}"] = p.read_bytes()
    package = checkout / "signcheck"
    for p in sorted(package.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            files[f"{SITE}/{p.relative_to(checkout).as_posix()}"] = p.read_bytes()
    key = _key(*(f"{k}:{hashlib.sha256(v).hexdigest()}" for k, v in sorted(files.items())))

    def make(tar_path: Path) -> None:
        with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
            parents = {
                "/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)
            }
            for dirname in sorted(parents):
                _add_dir(tar, dirname)
            _add_dir(tar, f"{WORKDIR}/reports")
            for name, data in sorted(files.items()):
                _add(tar, name, data, 0o644)

    return _cached("suite", key, make, progress)


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    tar.addfile(info)


def _tar_tree(root: Path, tar_path: Path) -> None:
    # Sorted, owner root, mtime 0: the same tree always makes the same bytes.
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        for p in sorted(root.rglob("*")):
            if "__pycache__" in p.parts:
                continue
            info = tar.gettarinfo(str(p), p.relative_to(root).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            if p.is_file():
                with p.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)

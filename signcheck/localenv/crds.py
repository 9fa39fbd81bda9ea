"""Kyverno's CRDs: read once from the module's `config/crds`, applied server-side.

Several are too large for client-side apply's last-applied annotation, hence server-side
apply. Parsing megabytes of YAML takes most of a second, so the parsed list is cached as
JSON beside the YAML, keyed by the files' sizes and mtimes.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from signcheck import places
from signcheck.localenv.kubeapi import Kube
from signcheck.tools import pins
from signcheck.wait import NotYet

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def crd_dir() -> Path:
    return pins.data_dir("kyverno") / "config" / "crds"


def _fingerprint(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def load_crds(directory: Path | None = None, cache: Path | None = None) -> list[dict[str, Any]]:
    directory = directory or crd_dir()
    files = sorted(directory.rglob("*.yaml"))
    if not files:
        raise FileNotFoundError(f"no CRDs under {directory}: rebuild the kyverno tool group")
    cache = cache or places.cache_root() / "parsed" / f"kyverno-crds-{_fingerprint(files)}.json"
    if cache.is_file():
        parsed: list[dict[str, Any]] = json.loads(cache.read_text())
        return parsed
    crds = []
    for f in files:
        for doc in yaml.load_all(f.read_text(), Loader=Loader):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                crds.append(doc)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(crds))
    tmp.replace(cache)
    return crds


def apply_crds(kube: Kube, crds: list[dict[str, Any]]) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(kube.apply, crds))


def served(crds: list[dict[str, Any]]) -> dict[str, set[str]]:
    """group/version -> plurals the CRDs serve."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for crd in crds:
        spec = crd["spec"]
        for version in spec["versions"]:
            if version.get("served", True):
                wanted[f"{spec['group']}/{version['name']}"].add(spec["names"]["plural"])
    return wanted


def discovery_probe(kube: Kube, crds: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    """A probe: done when discovery lists every served CRD resource (what Kyverno checks)."""
    wanted = served(crds)

    def probe() -> bool:
        missing = []
        for gv, plurals in sorted(wanted.items()):
            try:
                listed = kube.raw("GET", f"/apis/{gv}")
            except Exception as err:  # 404 until the group is registered
                missing.append(f"{gv} ({type(err).__name__})")
                continue
            names = {r["name"] for r in listed.get("resources", [])}
            missing += [f"{gv}/{p}" for p in sorted(plurals - names)]
        if missing:
            raise NotYet("not yet in discovery: " + ", ".join(missing[:6]))
        return True

    return probe

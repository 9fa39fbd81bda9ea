"""A seeded etcd data dir: Kyverno's CRDs already stored, copied into each new run.

Creating Kyverno's 22 CRDs costs the apiserver about ten seconds of CPU on two cores
(compiling their CEL validations and OpenAPI for several megabytes of schema), before
discovery lists them. An apiserver that finds the same CRDs in etcd at start serves them
within its own boot. So the first boot with a given etcd, apiserver and CRD set makes a
seed once (a throwaway etcd + apiserver, the CRDs created, both stopped cleanly), kept in
the tool cache; every later run starts its etcd on a copy. The seed holds nothing else of
a run: no keys, no ports, no Kyverno state.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from signcheck import places
from signcheck.localenv import crds as crdlib
from signcheck.localenv.kubeapi import Kube
from signcheck.localenv.services.apiserver import KubeAPIServer
from signcheck.localenv.services.etcd import Etcd
from signcheck.localenv.services.kyverno import NAMESPACE
from signcheck.timeouts import Timeouts
from signcheck.wait import wait_for

SEED_FORMAT = "1"


def fingerprint(versions: dict[str, str], crds: list[dict[str, Any]]) -> str:
    h = hashlib.sha256(SEED_FORMAT.encode())
    h.update(versions["etcd"].encode() + versions["kube-apiserver"].encode())
    for crd in crds:
        h.update(crd["metadata"]["name"].encode())
        h.update(str(crd.get("spec")).encode())
    return h.hexdigest()[:16]


def seeds_root() -> Path:
    return places.cache_root() / "seeds"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_seed(
    paths: dict[str, Path], versions: dict[str, str], crds: list[dict[str, Any]], t: Timeouts
) -> Path:
    """The seed's etcd data dir, made first if missing (two boots never make it twice)."""
    seed = seeds_root() / fingerprint(versions, crds)
    data = seed / "data"
    if data.is_dir():
        return data
    with _locked(seeds_root() / f".{seed.name}.lock"):
        if data.is_dir():
            return data
        with tempfile.TemporaryDirectory(prefix=".build-", dir=seeds_root()) as tmp:
            built = _build(Path(tmp), paths, crds, t)
            seed.mkdir(parents=True, exist_ok=True)
            built.rename(data)
    return data


def _build(work: Path, paths: dict[str, Path], crds: list[dict[str, Any]], t: Timeouts) -> Path:
    etcd = Etcd(work, paths["etcd"], t)
    etcd_proc = etcd.build()
    api_proc = None
    try:
        etcd_proc.start()
        api = KubeAPIServer(work, paths["kube-apiserver"], t, etcd.url)
        api_proc = api.build()
        api_proc.start()
        with Kube(api.kubeconfig("admin"), timeout=t.api_call) as kube:
            kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
            crdlib.apply_crds(kube, crds)
            wait_for(
                "Kyverno's CRDs to be served (making the etcd seed)",
                crdlib.discovery_probe(kube, crds),
                timeout=t.service_ready,
                interval=t.poll_interval,
                where=api.url,
            )
    finally:
        # Clean stops: etcd must flush and close its files before the copy is taken.
        if api_proc is not None:
            api_proc.stop()
        etcd_proc.stop()
    return etcd.data_dir

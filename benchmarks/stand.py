"""A measurement stand: one local environment with a key pair and the seed's policy, built
from the library the suite uses, so benchmarks measure the same path the tests take.

    with Stand() as stand:
        ref = stand.push("signed", sign=True)
        result = stand.create_pod(ref)
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

from signcheck.clients import oci
from signcheck.clients.admission import Admission
from signcheck.clients.k8s import Cluster, pod
from signcheck.kyverno import cpol
from signcheck.localenv import EnvSpec, LocalEnv
from signcheck.providers.local import from_env_info
from signcheck.target import Target
from signcheck.tools.cosign import Cosign, KeyPair

POLICY = "check-image"


class Stand:
    def __init__(self, cosign_tool: str = "cosign-v2") -> None:
        self.cosign_tool = cosign_tool
        self._stack = contextlib.ExitStack()
        self.env: LocalEnv
        self.target: Target
        self.cluster: Cluster
        self.registry: oci.OciClient
        self.cosign: Cosign
        self.key: KeyPair
        self.namespace = ""

    def __enter__(self) -> Stand:
        try:
            self.env = self._stack.enter_context(LocalEnv(EnvSpec()))
            run_dir = Path(self.env.info.run_dir) / "bench"
            run_dir.mkdir(parents=True, exist_ok=True)
            self.target = from_env_info(self.env.info, run_dir)
            self.cluster = Cluster(self.target.kubeconfig)
            self.registry = oci.OciClient(self.target.registry)
            self.cosign = Cosign.from_tools(
                self.target.registry, run_dir / "cosign", self.cosign_tool, 60.0
            )
            self.key = self.cosign.generate_key_pair(run_dir / "keys")
            self.namespace = self.new_namespace("bench")
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    @property
    def run_id(self) -> str:
        return self.target.run_id

    def new_namespace(self, stem: str) -> str:
        name = f"{stem}-{secrets.token_hex(3)}"
        self.cluster.create_namespace(name, self.run_id)
        return name

    def repository(self, name: str) -> str:
        return self.target.registry.repository(self.run_id, name)

    def push(self, name: str, sign: bool = False, tag: str | None = None) -> oci.PushedImage:
        image = self.registry.push_image(self.repository(name), tag or secrets.token_hex(4))
        if sign:
            self.cosign.sign(self.key, image.by_digest)
        return image

    def push_many(self, names: list[str], sign: bool, workers: int = 4) -> list[oci.PushedImage]:
        """Push and sign concurrently: cosign spends most of its time waiting on the registry."""
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda n: self.push(n, sign), names))

    def policy(self, **overrides: Any) -> dict[str, Any]:
        overrides.setdefault("name", POLICY)
        return cpol.run_policy(self.target, (self.key.public_pem,), **overrides)

    def apply_policy(self, timeout: float = 60.0, **overrides: Any) -> float:
        """Apply the seed policy and wait until Ready; returns the seconds it took."""
        policies = cpol.Policies(self.cluster)
        policy = self.policy(**overrides)
        start = time.perf_counter()
        policies.apply(policy)
        policies.wait_ready(policy["metadata"]["name"], timeout)
        return time.perf_counter() - start

    def create_pod(self, image: str, namespace: str | None = None) -> tuple[Admission, float]:
        name = f"p-{secrets.token_hex(5)}"
        obj = pod(name, namespace or self.namespace, image, self.run_id)
        start = time.perf_counter()
        result = self.cluster.create(obj, image=image)
        return result, time.perf_counter() - start


@contextlib.contextmanager
def timer() -> Iterator[list[float]]:
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)

"""etcd: one member, data in the run dir, no fsync (the data dies with the run)."""

from __future__ import annotations

import shutil
from pathlib import Path

from signcheck.localenv.ports import HOST, free_port
from signcheck.localenv.probes import http_probe
from signcheck.localenv.process import Probe
from signcheck.localenv.services.base import Service
from signcheck.timeouts import Timeouts


class Etcd(Service):
    name = "etcd"
    tool = "etcd"

    def __init__(
        self, run_dir: Path, binary: Path, timeouts: Timeouts, seed: Path | None = None
    ) -> None:
        super().__init__(run_dir, binary, timeouts)
        self.seed = seed
        self.ports["client"] = free_port()
        # The peer port defaults to 2380 on all interfaces: a second run would collide.
        self.ports["peer"] = free_port()

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    def prepare(self) -> None:
        if self.seed is not None and not self.data_dir.exists():
            # A copied data dir keeps the seed's membership: the member name must match
            # (it does, always "signcheck"), the old peer URL is harmless for one member.
            shutil.copytree(self.seed, self.data_dir)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.ports['client']}"

    def argv(self) -> list[str]:
        peer = f"http://{HOST}:{self.ports['peer']}"
        return [
            "--name=signcheck",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.url}",
            f"--advertise-client-urls={self.url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=signcheck={peer}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]

    def ready(self) -> Probe:
        return http_probe(f"{self.url}/readyz")

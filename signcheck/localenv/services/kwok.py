"""kwok: fake kubelets for the Nodes the environment creates, so scheduled pods run.

kwok does nothing without Stage configs; the ones shipped in its module are passed with
`-c`. It manages only Nodes annotated `kwok.x-k8s.io/node=fake`, so a node someone else
adds is left alone.
"""

from __future__ import annotations

from pathlib import Path

from signcheck.localenv.kubeapi import KWOK_ANNOTATION
from signcheck.localenv.process import Probe
from signcheck.localenv.services.base import Service
from signcheck.timeouts import Timeouts
from signcheck.tools import pins

STAGES = ("node/fast", "node/heartbeat-with-lease", "pod/fast")
POD_CIDR = "10.244.0.0/16"


def stage_files(root: Path | None = None) -> list[Path]:
    root = root or pins.data_dir("kwok") / "kustomize" / "stage"
    files: list[Path] = []
    for stage in STAGES:
        found = sorted((root / stage).glob("*.yaml"))
        files += [f for f in found if f.name != "kustomization.yaml"]
    return files


class Kwok(Service):
    name = "kwok"
    tool = "kwok"

    def __init__(
        self, run_dir: Path, binary: Path, timeouts: Timeouts, kubeconfig: Path, ready: Probe
    ) -> None:
        super().__init__(run_dir, binary, timeouts)
        self.kubeconfig = kubeconfig
        self._ready = ready

    def argv(self) -> list[str]:
        stages = stage_files()
        if not stages:
            raise FileNotFoundError(
                f"no kwok Stage configs under {pins.data_dir('kwok')}: rebuild kwok"
            )
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
            f"--cidr={POD_CIDR}",
            "--node-ip=127.0.0.1",
            # The heartbeat-with-lease stage renews Node leases; 40s is the kubelet default.
            "--node-lease-duration-seconds=40",
            *[f"--config={f}" for f in stages],
        ]

    def env(self) -> dict[str, str]:
        # kwok reads ~/.kwok/kwok.yaml when it exists: a user's file must not change the run.
        return {"HOME": str(self.dir)}

    def ready(self) -> Probe:
        return self._ready

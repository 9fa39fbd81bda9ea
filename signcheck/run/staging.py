"""The registry half of a run's resources, done while the local environment boots.

Pushing the images and signing them (key pairs and a decryption per signed digest, all
scrypt) is the longest CPU-bound step of the session setup, and it needs only the registry.
The local environment's registry answers a second into the boot, so the owner starts
`RunResources.stage` in a thread then and `RunResources.create` picks the result up. Where
the boot mostly waits (a real node: Helm, Kyverno's pods) the signing disappears from the
run's time; where the boot is itself CPU-bound (kwok on two cores) it takes about as much
longer as the signing saves.

Only where the process that boots is the one that creates the resources (a serial run:
under xdist a worker creates them, and key passwords never leave the process that made
them) and the run makes its own key pairs (a user's key or KMS key is checked at the
resources' step, after the cluster's preflight, as before).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from signcheck.run.phases import Phases
from signcheck.run.resources import RunResources, Staged
from signcheck.settings.config import Settings
from signcheck.target import Registry, Target

BOOT_FIRST = 19
"""cosign's niceness while staging: the boot (API server, Kyverno) keeps the CPU it needs;
signing gets what the boot's waits leave (measured: the boot took 4.5 s longer at equal
priority, 2.5 s longer at 19)."""


def wanted(settings: Settings, *, serial: bool, needs_resources: bool) -> bool:
    """Whether a run should stage (see the module's docstring)."""
    return serial and needs_resources and settings.kind.own_cluster and not settings.signing_key


class Stager:
    """`start(registry)` from the boot; `take()` from the resources' step."""

    def __init__(self, settings: Settings, run_id: str, run_dir: Path, phases: Phases) -> None:
        self.settings = settings
        self.run_id = run_id
        self.run_dir = run_dir
        self.phases = phases
        self.catalogue = True
        self._thread: threading.Thread | None = None
        self._staged: Staged | None = None
        self._error: BaseException | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self, registry: Registry) -> None:
        # The target as the staging sees it: registry and run directory only; its cluster is
        # not there yet, and a kubeconfig of /dev/null fails loudly if anything reaches for it.
        target = Target(
            name=self.settings.target,
            run_id=self.run_id,
            run_dir=self.run_dir,
            kubeconfig=Path(os.devnull),
            registry=registry,
            containers_run=self.settings.nodes == "real",
            disposable=True,
        )
        resources = RunResources(target, self.settings, self.phases)
        catalogue = self.catalogue

        def work() -> None:
            try:
                self._staged = resources.stage(catalogue, nice=BOOT_FIRST)
            except BaseException as err:  # re-raised by take(), in the resources' step
                self._error = err

        # A daemon: a boot that fails or is interrupted must not wait for the signing.
        self._thread = threading.Thread(target=work, name="signcheck-staging", daemon=True)
        self._thread.start()

    def settle(self, timeout: float) -> None:
        """At the end of the run: a staging the run never took (the boot failed or was
        interrupted) ends once the registry is gone, so that none of its cosign processes
        outlives the run."""
        if self._thread is not None:
            self._thread.join(timeout)

    def take(self, catalogue: bool) -> Staged | None:
        """The staged half (waiting for it), or None when nothing was staged or it was staged
        for another selection of tests. A failure of the staging is raised here, where the
        same failure would have been raised without it."""
        if self._thread is None:
            return None
        self._thread.join()
        if self._error is not None:
            raise self._error
        staged = self._staged
        if staged is not None:
            staged.cosign.nice = 0  # the rest of the run signs at the run's own priority
        return staged if staged is not None and staged.catalogue == catalogue else None

"""Staging (`signcheck.run.staging`): the registry half of the session resources made in a
thread while the environment boots, against a real registry and real cosign; a staging that
fails raises its error where the resources' step would have."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from signcheck.errors import SigncheckError
from signcheck.run.phases import Phases
from signcheck.run.staging import Stager, wanted
from signcheck.settings.config import Settings
from signcheck.target import Registry
from signcheck.tools.cosign import Cosign


def test_staging_only_where_the_booting_process_creates_its_own_keys() -> None:
    local = Settings()
    assert wanted(local, serial=True, needs_resources=True)
    # Under xdist a worker creates the resources; key passwords stay in one process.
    assert not wanted(local, serial=False, needs_resources=True)
    # Nothing to stage for a selection that never asks for the resources.
    assert not wanted(local, serial=True, needs_resources=False)
    # A cluster target's registry and keys are checked by its preflight first.
    assert not wanted(replace(local, target="cluster"), serial=True, needs_resources=True)
    # The user's key (or KMS key) is checked at the resources' step, as before.
    assert not wanted(
        replace(local, signing_key="/keys/cosign.key"), serial=True, needs_resources=True
    )


def test_nothing_staged_is_none() -> None:
    stager = Stager(Settings(), "t-none", Path("/nonexistent"), Phases(Path("/nonexistent")))
    assert not stager.started
    assert stager.take(catalogue=True) is None


@pytest.mark.integration
def test_staged_images_are_pushed_and_signed(
    registry: Registry, run_id: str, tmp_path: Path
) -> None:
    stager = Stager(Settings(), run_id, tmp_path, Phases(tmp_path))
    stager.catalogue = False  # the seed's images and keys only: the fast path of the test
    stager.start(registry)
    assert stager.started
    # Staged for another selection of tests: not used (the resources' step makes its own).
    staged = stager.take(catalogue=False)
    assert staged is not None and stager.take(catalogue=True) is None
    assert set(staged.keys) == {"main", "other"}
    assert staged.compat == {}
    # Back at the run's own priority for whatever signs after the boot.
    assert staged.cosign.nice == 0
    verifier = Cosign.from_tools(registry, tmp_path / "verify")
    main = staged.keys["main"]
    signed = verifier.verify(main.public_key, staged.pushed["signed"].by_digest)
    assert signed.outcome == "verified", signed.result.stderr
    # The other key's image carries the other key's signature, not the main key's.
    other_image = staged.pushed["otherkey"].by_digest
    assert verifier.verify(main.public_key, other_image).outcome == "no_matching_signatures"
    assert verifier.verify(staged.keys["other"].public_key, other_image).outcome == "verified"
    assert verifier.verify(main.public_key, staged.pushed["unsigned"].by_digest).outcome == (
        "no_signatures"
    )


def test_a_failed_staging_raises_in_the_resources_step(run_id: str, tmp_path: Path) -> None:
    from selftests.lib.registry_server import free_port

    nowhere = Registry(f"127.0.0.1:{free_port()}", "http")
    stager = Stager(Settings(), run_id, tmp_path, Phases(tmp_path))
    stager.start(nowhere)
    with pytest.raises(SigncheckError, match=r"127\.0\.0\.1"):
        stager.take(catalogue=True)

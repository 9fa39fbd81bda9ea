from __future__ import annotations

import re
from pathlib import Path

from signcheck.run import shared
from signcheck.run.phases import Phases
from signcheck.run.resources import namespace_name
from signcheck.target import Registry, Target, new_run_id


def test_run_ids_are_label_values_and_unique() -> None:
    ids = {new_run_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{6}", i) for i in ids)


def test_namespace_names_are_dns_labels() -> None:
    name = namespace_name("20260101-000000-abcdef", "test_Unsigned_pod[with params-" + "x" * 80)
    assert name.startswith("sc-abcdef-") and len(name) <= 63
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)


def test_target_json_never_holds_the_password(tmp_path: Path) -> None:
    t = Target(
        name="local",
        run_id="r",
        run_dir=tmp_path,
        kubeconfig=tmp_path / "kc",
        registry=Registry("127.0.0.1:5000", "http", username="u", password="pw-secret-123"),
    )
    text = t.to_json()
    assert "pw-secret-123" not in text
    back = Target.from_json(text, password="pw-secret-123")
    assert back == t


def test_once_creates_once_and_remembers_failures(tmp_path: Path) -> None:
    calls = []

    def make() -> dict[str, object]:
        calls.append(1)
        return {"value": 42}

    assert shared.once(tmp_path, "thing", make, 5) == {"value": 42}
    assert shared.once(tmp_path, "thing", make, 5) == {"value": 42}
    assert len(calls) == 1


def test_phases_subtract_overlap(tmp_path: Path) -> None:
    phases = Phases(tmp_path)
    phases.add("boot", 2.0, (100.0, 102.0))
    phases.add("boot", 1.0)
    assert phases.read() == {"boot": 3.0}
    assert phases.overlap(101.0, 110.0) == 1.0

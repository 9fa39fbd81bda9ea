"""The small parts: the wait loop, ports, settings, the info's JSON, state and reaping."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from signcheck.errors import ConfigError, EnvironmentNotReady
from signcheck.localenv import kubeapi as kubelib
from signcheck.localenv.info import EnvInfo, RegistryInfo
from signcheck.localenv.ports import free_port, is_listening
from signcheck.localenv.process import ManagedProcess, is_alive
from signcheck.localenv.reap import down, reap_abandoned
from signcheck.localenv.spec import EnvSpec
from signcheck.localenv.state import EnvState, OwnerLock, list_runs, new_state
from signcheck.timeouts import Timeouts
from signcheck.wait import NotYet, wait_for

FakeBinary = Callable[[str, str], Path]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_for_timeout_says_what_where_limit_and_last_observation() -> None:
    clock = FakeClock()
    seen = iter(range(1000))

    def probe() -> bool:
        raise NotYet(f"observation {next(seen)}")

    with pytest.raises(EnvironmentNotReady) as info:
        wait_for(
            "the thing",
            probe,
            timeout=2,
            interval=0.5,
            where="127.0.0.1:1",
            clock=clock,
            sleep=clock.sleep,
        )
    assert info.value.message == "timed out after 2s waiting for the thing at 127.0.0.1:1"
    attempts = int(info.value.details.split("attempts: ")[1].split()[0])
    assert f"last observation: observation {attempts - 1}" in info.value.details


def test_wait_for_backs_off_from_a_fast_first_poll_to_the_interval() -> None:
    clock = FakeClock()
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        clock.sleep(seconds)

    def probe() -> bool:
        raise NotYet("no")

    with pytest.raises(EnvironmentNotReady):
        wait_for("x", probe, timeout=3, interval=0.5, clock=clock, sleep=sleep)
    assert pauses[0] == pytest.approx(0.02)
    # The last pause is cut short by the deadline.
    assert all(b >= a for a, b in itertools.pairwise(pauses[:-1])), pauses
    assert max(pauses) == pytest.approx(0.5)


def test_until_honours_its_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    # `until(backoff=)` used to be accepted and dropped: each pause must grow by it.
    from signcheck import wait

    seen: dict[str, object] = {}
    monkeypatch.setattr(wait, "wait_for", lambda *a, **kw: seen.update(kw) or True)
    assert wait.until(lambda: True, what="x", timeout=1, backoff=2.0)
    assert seen["backoff"] == 2.0
    monkeypatch.undo()
    for factor in (1.5, 3.0):
        clock = FakeClock()
        pauses: list[float] = []

        def sleep(seconds: float, clock: FakeClock = clock, pauses: list[float] = pauses) -> None:
            pauses.append(seconds)
            clock.sleep(seconds)

        with pytest.raises(EnvironmentNotReady):
            wait_for(
                "x",
                lambda: (_ for _ in ()).throw(NotYet("no")),
                timeout=1,
                interval=10,
                backoff=factor,
                clock=clock,
                sleep=sleep,
            )
        assert pauses[1] == pytest.approx(pauses[0] * factor), (factor, pauses)


def test_wait_for_records_transient_errors_and_stops_on_others() -> None:
    clock = FakeClock()

    def refused() -> bool:
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(EnvironmentNotReady, match="waiting for x") as info:
        wait_for("x", refused, timeout=1, clock=clock, sleep=clock.sleep)
    assert "ConnectionRefusedError: connection refused" in info.value.details

    calls = []

    def broken() -> bool:
        calls.append(1)
        raise KeyError("not transient")

    with pytest.raises(KeyError):
        wait_for("y", broken, timeout=10, clock=clock, sleep=clock.sleep)
    assert len(calls) == 1


def test_wait_for_returns_the_probe_result() -> None:
    results = iter([NotYet("no"), "done"])

    def probe() -> str:
        r = next(results)
        if isinstance(r, Exception):
            raise r
        return r

    assert wait_for("z", probe, timeout=5, interval=0.001) == "done"


def test_free_ports_are_distinct_reserved_and_free(private_cache: Path) -> None:
    ports = {free_port() for _ in range(20)}
    assert len(ports) == 20
    reserved = {int(p.name) for p in (private_cache / "cache" / "ports").iterdir()}
    assert ports <= reserved
    assert not any(is_listening(p) for p in ports)


def test_timeouts_from_env() -> None:
    t = Timeouts.from_env({"SIGNCHECK_TIMEOUT_ENV_BOOT": "42", "SIGNCHECK_TIMEOUT_STOP": "1.5"})
    assert t.env_boot == 42 and t.stop == 1.5 and t.service_ready == Timeouts().service_ready
    with pytest.raises(ConfigError, match="SIGNCHECK_TIMEOUT_STOP"):
        Timeouts.from_env({"SIGNCHECK_TIMEOUT_STOP": "soon"})
    with pytest.raises(ConfigError):
        Timeouts.from_env({"SIGNCHECK_TIMEOUT_STOP": "0"})
    with pytest.raises(ConfigError):
        EnvSpec(nodes=0)


def test_info_json_holds_a_credentials_path_never_the_password(tmp_path: Path) -> None:
    creds = tmp_path / "credentials.json"
    creds.write_text(json.dumps({"registry": "h", "username": "u", "password": "s3cret-pw"}))
    info = EnvInfo(
        run_id="r",
        run_dir="/d",
        kubeconfig="/k",
        apiserver_url="https://127.0.0.1:1",
        registry=RegistryInfo(
            "127.0.0.1:5", "https", tls=True, auth=True, credentials_path=str(creds)
        ),
        nodes=["n"],
        pids={"etcd": 1},
        ports={"etcd": {"client": 2}},
        versions={"etcd": "v3"},
        logs_dir="/d/logs",
        state_file="/d/state.json",
    )
    text = info.to_json()
    assert "s3cret-pw" not in text
    assert json.loads(text)["registry"]["url"] == "https://127.0.0.1:5"
    assert info.registry.credentials() == ("u", "s3cret-pw")
    assert EnvInfo.from_dict(json.loads(text)) == info


def test_webhook_url_on_a_dead_loopback_port_is_dead() -> None:
    port = free_port()
    assert kubelib.dead_endpoint(f"https://127.0.0.1:{port}/validate/fail")
    assert not kubelib.dead_endpoint("https://kyverno-svc.kyverno.svc:443/validate")


def _fake_run(root: Path, name: str, binary: Path, owner_pid: int) -> EnvState:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    proc = ManagedProcess("svc", [binary], log_path=run_dir / "logs" / "svc.log")
    proc.start()
    state = new_state(name, run_dir, "context", keep=False)
    state.owner_pid, state.owner_start_time = owner_pid, None
    state.record(proc.record())
    return state


def test_abandoned_runs_are_reaped_live_ones_left(
    private_cache: Path, fake_binary: FakeBinary
) -> None:
    root = private_cache / "runs"
    binary = fake_binary("svc", "exec sleep 60\n")
    dead_owner = subprocess.Popen(["true"])
    dead_owner.wait()
    abandoned = _fake_run(root, "sc-dead", binary, dead_owner.pid)
    live = _fake_run(root, "sc-live", binary, os.getpid())
    lock = OwnerLock(live.run_dir)
    assert lock.acquire()
    try:
        lines = reap_abandoned(root, Timeouts(stop=2))
        assert any("sc-dead: svc" in line for line in lines)
        assert not abandoned.run_dir.exists()
        assert not is_alive(abandoned.services[0].pid, abandoned.services[0].start_time)
        assert live.run_dir.exists()
        assert is_alive(live.services[0].pid, live.services[0].start_time)
        assert [r.run_id for r in list_runs(root)] == ["sc-live"]
        # A live test session's run is refused without --force.
        with pytest.raises(EnvironmentNotReady, match="belongs to a live process"):
            down(EnvState.load(live.run_dir), Timeouts(stop=2))
    finally:
        lock.release()
    # Once its owner lets go, the run is abandoned and `down` removes it.
    down(EnvState.load(live.run_dir), Timeouts(stop=2))
    assert not live.run_dir.exists()
    deadline = time.monotonic() + 2
    while is_alive(live.services[0].pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not is_alive(live.services[0].pid, live.services[0].start_time)


def test_a_run_dir_without_state_is_removed_only_once_old(private_cache: Path) -> None:
    root = private_cache / "runs"
    young, old = root / "sc-young", root / "sc-old"
    for d in (young, old):
        d.mkdir(parents=True)
        (d / "owner.lock").touch()
    past = time.time() - 3600
    os.utime(old, (past, past))
    lines = reap_abandoned(root, Timeouts(stop=1))
    assert young.exists(), "a run being created right now must survive"
    assert not old.exists()
    assert lines == [f"sc-old: removed {old} (no state)"]

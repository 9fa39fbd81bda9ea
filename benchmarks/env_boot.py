"""Local environment figures: boot-to-Ready and teardown seconds, peak RSS of the services.

Boot is measured from `LocalEnv.start()` to Ready (apiserver /readyz, Kyverno's webhooks
answering, a canary ClusterPolicy Ready); teardown is `stop()` until every process is gone
and the run dir removed. On a real node Kyverno is installed in the cluster the way the suite
does it (`providers.cluster.checked`: preflight, the seed's `helm install`, deployment Ready,
webhooks registered, the policy accepted), so boot ends when the suite could start testing,
and teardown includes `helm uninstall`. Peak RSS is the largest sum of the services'
resident memory seen by a sampler every 100 ms (the node's daemons, the forwarders and the
pods' processes included; and, as an upper bound, the sum of each process's own peak).

    python -m benchmarks.env_boot [--runs 5] [--json] [--nodes kwok|real]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from signcheck.localenv import EnvSpec, LocalEnv, realnode


def _rss_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler(threading.Thread):
    def __init__(self, env: LocalEnv, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.env = env
        self.interval = interval
        self.peak_kib = 0
        self.done = threading.Event()

    def processes(self) -> dict[str, Any]:
        """Every process of the environment: its services, and on a real node the node's
        daemons and the forwarders."""
        procs = {n: s.process for n, s in list(self.env.services.items()) if s.process}
        world = self.env.world
        if world is not None:
            node = list(world.node.processes) if world.node else []
            procs.update({p.name: p for p in [*node, *world.forwarders]})
        return {n: p for n, p in procs.items() if p.pid is not None and p.alive}

    def pids(self) -> list[int]:
        pids = [p.pid for p in self.processes().values()]
        return pids + sorted(self.pod_pids())

    def pod_pids(self) -> set[int]:
        """The pods' processes on a real node (Kyverno installed in the cluster)."""
        if self.env.world is None:
            return set()
        return realnode.pod_pids(f"signcheck-{self.env.run_id}")

    def run(self) -> None:
        while not self.done.wait(self.interval):
            total = sum(_rss_kib(pid, "VmRSS") for pid in self.pids())
            self.peak_kib = max(self.peak_kib, total)

    def high_water_kib(self) -> dict[str, int]:
        """Each live service's own peak RSS (VmHWM), by service name; the pods' together."""
        hwm = {name: _rss_kib(p.pid, "VmHWM") for name, p in self.processes().items()}
        if pods := self.pod_pids():
            hwm["pods (Kyverno in the cluster)"] = sum(_rss_kib(pid, "VmHWM") for pid in pods)
        return hwm


@contextlib.contextmanager
def _kyverno_in_cluster(env: LocalEnv, work: Path) -> Iterator[None]:
    """What the suite does on a real node after the environment is up (providers.local)."""
    from signcheck.providers.local import from_env_info, kyverno_in_cluster
    from signcheck.settings.config import Settings

    work.mkdir(parents=True, exist_ok=True)
    target = from_env_info(env.info, work)
    settings = Settings(target="local", nodes="real")
    with kyverno_in_cluster(settings, target, env.info.kyverno_values):
        yield


def one_run(runs_root: Path, nodes: str = "kwok") -> dict[str, Any]:
    # On a real node the environment the suite boots: a registry with credentials and TLS.
    real = nodes == "real"
    spec = EnvSpec(
        runs_root=runs_root,
        node_kind=nodes,  # type: ignore[arg-type]
        kyverno="helm" if real else "process",
        registry_auth=real,
        registry_tls=real,
    )
    env = LocalEnv(spec)
    sampler = RssSampler(env)
    sampler.start()
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        try:
            env.start()
            env_ready = time.perf_counter() - started
            if real:
                stack.enter_context(_kyverno_in_cluster(env, runs_root / f"{env.run_id}-suite"))
            boot = time.perf_counter() - started
            time.sleep(1.0)  # let the sampler see the settled environment too
            hwm = sampler.high_water_kib()
        finally:
            sampler.done.set()
            stop_started = time.perf_counter()
            try:
                stack.close()
            finally:
                problems = env.stop()
            teardown = time.perf_counter() - stop_started
    if problems:
        raise RuntimeError("teardown problems: " + "; ".join(problems))
    return {
        "boot_s": boot,
        "env_ready_s": env_ready,
        "teardown_s": teardown,
        "peak_rss_mib": sampler.peak_kib / 1024,
        "sum_of_peaks_mib": sum(hwm.values()) / 1024,
        "service_peak_mib": {name: kib / 1024 for name, kib in hwm.items()},
        "phases_s": dict(env.timings),
    }


KEYS = ("boot_s", "env_ready_s", "teardown_s", "peak_rss_mib", "sum_of_peaks_mib")


def measure(runs: int, progress: bool = True, nodes: str = "kwok") -> dict[str, Any]:
    results = []
    with tempfile.TemporaryDirectory(prefix="signcheck-bench-") as tmp:
        for i in range(runs):
            results.append(one_run(Path(tmp), nodes))
            if progress:
                r = results[-1]
                print(
                    f"run {i + 1}: boot {r['boot_s']:.2f}s  teardown {r['teardown_s']:.2f}s  "
                    f"peak RSS {r['peak_rss_mib']:.0f} MiB",
                    flush=True,
                )
    return {"runs": results, "median": {k: statistics.median(r[k] for r in results) for k in KEYS}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.env_boot")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--nodes", choices=("kwok", "real"), default="kwok")
    args = parser.parse_args(argv)
    measured = measure(args.runs, progress=not args.json, nodes=args.nodes)
    if args.json:
        print(json.dumps(measured, indent=2))
    else:
        print_table(measured)
    return measured


def print_table(measured: dict[str, Any]) -> None:
    results, summary, keys = measured["runs"], measured["median"], KEYS
    print()
    print(f"{'metric':<22}{'median':>10}{'min':>10}{'max':>10}   ({len(results)} runs)")
    for k in keys:
        values = [r[k] for r in results]
        print(f"{k:<22}{summary[k]:>10.2f}{min(values):>10.2f}{max(values):>10.2f}")
    print()
    print("median peak RSS per service (MiB):")
    for name in results[0]["service_peak_mib"]:
        mib = statistics.median(r["service_peak_mib"].get(name, 0.0) for r in results)
        print(f"  {name:<26}{mib:>8.0f}")
    print("median seconds per phase:")
    for name in results[0]["phases_s"]:
        sec = statistics.median(r["phases_s"].get(name, 0.0) for r in results)
        print(f"  {name:<56}{sec:>6.2f}")
    print(
        "goal: kwok boot_s < 15, teardown_s < 3; real node (Kyverno by Helm) boot_s <= 30, "
        "teardown_s <= 10, peak RSS <= 2048 MiB"
    )


if __name__ == "__main__":
    main()

"""Run every benchmark, print one table, write benchmarks/results/<date>.json and a chart.

    python -m benchmarks [--only tools,env,suite,admission,load,scaling,peer] [--quick]

`--quick` runs fewer repetitions (a smoke test of the benchmarks themselves, not figures to
quote). Everything runs on the local target with the tools cached; nothing is timed inside
the test suite itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from benchmarks import admission, env_boot, load, peer, scaling, suite, tools_bench
from signcheck.errors import ConfigError
from signcheck.localenv.realnode import check_prerequisites

RESULTS = Path(__file__).resolve().parent / "results"
SECTIONS = ("tools", "env", "suite", "admission", "load", "scaling", "peer")


def machine() -> dict[str, Any]:
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def real_node_missing() -> str:
    """Why the real-node rows cannot run here ("" when they can)."""
    try:
        check_prerequisites()
    except ConfigError as exc:
        return str(exc)
    return ""


def run(sections: list[str], quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "machine": machine()}
    # Both node kinds side by side in one run; a machine without runc/CNI says so in the
    # results instead of silently dropping the rows.
    missing = real_node_missing()
    if missing:
        out["real_node_skipped"] = missing
        print(f"(real-node rows skipped: {missing})")
    if "tools" in sections:
        print("== tools")
        out["tools"] = tools_bench.main(["--runs", "3" if quick else "5"])
    if "env" in sections:
        print("== environment boot and teardown")
        out["env"] = env_boot.main(["--runs", "2" if quick else "5"])
        if not missing:
            print("== environment boot and teardown, real node")
            out["env_real"] = env_boot.main(["--runs", "2" if quick else "5", "--nodes", "real"])
    if "suite" in sections:
        print("== suite wall time")
        modes = "serial,n2" if missing else "serial,n2,real"
        out["suite"] = suite.main(["--runs", "1" if quick else "3", "--modes", modes])
    if "admission" in sections:
        print("== admission latency")
        out["admission"] = admission.main(["--creates", "20" if quick else "200"])
    if "load" in sections:
        print("== admission under load (100 creates, 20 in parallel, signed and unsigned)")
        out["load"] = load.main(["--creates", "20" if quick else "100", "--parallel", "20"])
    if "scaling" in sections:
        print("== scaling")
        out["scaling"] = scaling.main(["--sizes", "1,5" if quick else "1,5,20"])
    if "peer" in sections:
        print("== signcheck vs chainsaw (A B A B)")
        out["peer"] = peer.main(["--pairs", "1" if quick else "5"])
    return out


def chart(results: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no chart; pip install -e '.[bench]')")
        return None
    panels = [k for k in ("suite", "admission", "scaling", "peer") if k in results]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, name in zip(axes[0], panels, strict=True):
        data = results[name]
        if name == "suite":
            cells = {k: v["median_s"] for k, v in data.items() if isinstance(v, dict)}
            ax.bar(list(cells), list(cells.values()), color="#4c72b0")
            ax.set_ylabel("seconds (median)")
            ax.set_title("suite wall time")
            ax.tick_params(axis="x", rotation=30)
        elif name == "admission":
            labels = list(data)
            ax.bar([f"{k}\np50" for k in labels], [data[k]["p50_ms"] for k in labels])
            ax.bar([f"{k}\np95" for k in labels], [data[k]["p95_ms"] for k in labels])
            ax.set_ylabel("ms")
            ax.set_title("pod admission latency")
            ax.tick_params(axis="x", rotation=30, labelsize=7)
        elif name == "scaling":
            xs = [r["n"] for r in data["runs"]]
            ax.plot(xs, [r["wall_seconds"] for r in data["runs"]], "o-")
            ax.set_xlabel("signed images verified")
            ax.set_ylabel("run wall seconds")
            ax.set_title(f"scaling: {data['per_image_seconds']} s/image")
        elif name == "peer":
            pairs = range(len(data["pairs"]))
            ax.plot(
                pairs,
                [p["chainsaw"]["wall_seconds"] for p in data["pairs"]],
                "o-",
                label="chainsaw",
            )
            ax.plot(
                pairs,
                [p["signcheck"]["wall_seconds"] for p in data["pairs"]],
                "s-",
                label="signcheck",
            )
            ax.set_xlabel("pair (A B alternating)")
            ax.set_ylabel("seconds")
            ax.set_title("seed scenario vs chainsaw")
            ax.legend()
    fig.suptitle(f"signcheck benchmarks {results['date']} ({results['machine']['cpus']} cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    sections = [s for s in args.only.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    results = run(sections, args.quick)
    RESULTS.mkdir(exist_ok=True)
    stem = results["date"] + ("-quick" if args.quick else "")
    json_path = RESULTS / f"{stem}.json"
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    png = chart(results, RESULTS / f"{stem}.png")
    print(f"\nresults: {json_path}" + (f"\nchart:   {png}" if png else ""))


if __name__ == "__main__":
    main()

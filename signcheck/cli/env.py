"""`signcheck env up|status|logs|down`: the local environment from the shell.

`env up` starts a supervisor process in a session of its own (it owns the services and
outlives the command), waits until the environment is Ready and prints where things are.
The other commands find runs through their state files, so they work from any shell.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Literal

from signcheck.errors import ConfigError, EnvironmentNotReady
from signcheck.localenv.process import is_alive
from signcheck.localenv.reap import down, reap_abandoned
from signcheck.localenv.services.registry import USERNAME as REGISTRY_USER
from signcheck.localenv.spec import EnvSpec
from signcheck.localenv.state import EnvState, list_runs
from signcheck.places import env_runs
from signcheck.settings.config import Settings
from signcheck.target import new_run_id
from signcheck.timeouts import Timeouts
from signcheck.wait import NotYet, wait_for


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    env_p = sub.add_parser("env", help="the local environment: up, status, logs, down")
    esub = env_p.add_subparsers(dest="env_cmd", required=True)

    up = esub.add_parser("up", help="start an environment and wait until it is Ready")
    up.add_argument("--json", action="store_true", help="print the environment info as JSON")
    up.add_argument("--keep", action="store_true", help="keep the run dir after `env down`")
    up.add_argument("--registry-auth", action="store_true", help="htpasswd auth on the registry")
    up.add_argument("--registry-tls", action="store_true", help="TLS with its own CA")
    up.add_argument(
        "--nodes",
        choices=("kwok", "real"),
        default="kwok",
        help="kwok (fake nodes, default) or real (containerd, kubelet, kube-proxy in the "
        "environment's own network namespace; root)",
    )
    up.add_argument(
        "--kyverno",
        choices=("process", "helm"),
        default=None,
        help="process: Kyverno's controllers run by the environment (the default with kwok); "
        "helm: Kyverno's images mirrored into the registry and chart values written, for "
        "`helm install` or `pytest --target cluster --kyverno-mode install --kyverno-values "
        "<kyverno_values>` (the default with --nodes real: the seed's flow)",
    )
    up.add_argument(
        "--kyverno-version",
        default=None,
        help="the pinned Kyverno to run (default the newest; `signcheck tools list kyverno`)",
    )
    up.set_defaults(func=cmd_up)

    status = esub.add_parser("status", help="each run and whether each service is alive")
    status.add_argument("--run", help="run id (default: every run)")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    logs = esub.add_parser("logs", help="a service's log (default: the tail of every log)")
    logs.add_argument("service", nargs="?")
    logs.add_argument("--run", help="run id (default: the newest run)")
    logs.add_argument("--tail", type=int, default=None, help="last N lines")
    logs.set_defaults(func=cmd_logs)

    dn = esub.add_parser("down", help="stop environments started by `env up`, and leftovers")
    dn.add_argument("--run", help="run id (default: every `env up` run and every abandoned one)")
    dn.add_argument("--keep", action="store_true", help="keep the run dir")
    dn.add_argument(
        "--force", action="store_true", help="also stop runs owned by a live test session"
    )
    dn.set_defaults(func=cmd_down)


def _select(run: str | None) -> list[EnvState]:
    runs = list_runs(env_runs())
    if run is None:
        return runs
    chosen = [r for r in runs if r.run_id == run]
    if not chosen:
        known = ", ".join(r.run_id for r in runs) or "none"
        raise ConfigError(f"no run {run!r} under {env_runs()} (runs: {known})")
    return chosen


def cmd_up(args: argparse.Namespace) -> int:
    kyverno: Literal["process", "helm"] = args.kyverno or (
        "helm" if args.nodes == "real" else "process"
    )
    # Checked before anything starts: the spec refuses Kyverno in the cluster on kwok.
    EnvSpec(node_kind=args.nodes, kyverno=kyverno)
    if args.kyverno_version:
        # The supervisor (a child) inherits the selection, as the suite's runs do.
        Settings(kyverno_version=args.kyverno_version).validate()
    timeouts = Timeouts.from_env()
    root = env_runs()
    for line in reap_abandoned(root, timeouts):
        print(f"cleaned up: {line}", file=sys.stderr)
    run_id = new_run_id()
    run_dir = root / run_id
    (run_dir / "logs").mkdir(parents=True)
    result = root / f".{run_id}.result.json"
    argv = [sys.executable, "-m", "signcheck.localenv.supervise", run_id, str(result)]
    argv += [
        f
        for f, on in (
            ("--keep", args.keep),
            ("--registry-auth", args.registry_auth),
            ("--registry-tls", args.registry_tls),
        )
        if on
    ]
    argv += [f"--nodes={args.nodes}", f"--kyverno={kyverno}"]
    log = (run_dir / "logs" / "supervisor.log").open("ab")
    supervisor = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()

    def finished() -> dict[str, object]:
        if result.is_file():
            loaded: dict[str, object] = json.loads(result.read_text())
            return loaded
        code = supervisor.poll()
        if code is not None:
            raise EnvironmentNotReady(
                f"the environment supervisor exited with code {code} before reporting",
                f"log: {run_dir / 'logs' / 'supervisor.log'}",
            )
        raise NotYet(f"supervisor pid {supervisor.pid} still booting")

    try:
        outcome = wait_for(
            "the local environment to boot",
            finished,
            timeout=timeouts.env_boot + 30,
            interval=0.1,
            where=str(run_dir),
            transient=(ValueError,),
        )
    except KeyboardInterrupt:
        # The supervisor finishes booting, then sees this and tears everything down.
        supervisor.send_signal(signal.SIGTERM)
        raise
    finally:
        result.unlink(missing_ok=True)
    if not outcome.get("ok"):
        raise EnvironmentNotReady(str(outcome.get("message")), str(outcome.get("details", "")))
    info = dict(outcome["info"])  # type: ignore[call-overload]
    info["profile"] = str(write_profile(info))
    if args.json:
        print(json.dumps({**info, "boot_seconds": outcome.get("boot_seconds")}, indent=2))
        return 0
    reg = info["registry"]
    print(f"run {info['run_id']} ready in {float(outcome['boot_seconds'] or 0):.1f}s")  # type: ignore[arg-type]
    print(f"  kubeconfig  {info['kubeconfig']}")
    print(f"  apiserver   {info['apiserver_url']}")
    print(
        f"  registry    {reg['url']}"
        + ("  (credentials: " + reg["credentials_path"] + ")" if reg["auth"] else "")
    )
    if reg.get("ca_path"):
        print(f"  registry CA {reg['ca_path']}  (--registry-ca)")
    print(f"  run dir     {info['run_dir']}")
    print(f"  profile     {info['profile']}  (pytest --profile, signcheck fleet --profile)")
    if info.get("kyverno_values"):
        print("  Kyverno     not installed; its images are in the registry, values in")
        print(f"              {info['kyverno_values']} (--kyverno-mode install --kyverno-values)")
    print(f"  export KUBECONFIG={info['kubeconfig']}")
    return 0


def write_profile(info: dict[str, object]) -> Path:
    """`<run dir>/profile.toml`: the cluster target pointed at this environment, so `pytest
    --profile` and `signcheck fleet --profile` need nothing else (no secret: a registry with
    auth is named with the file its password is in)."""
    reg = info["registry"]
    assert isinstance(reg, dict)
    values: dict[str, object] = {
        "target": "cluster",
        "kubeconfig": info["kubeconfig"],
        "registry": reg["host"],
        "registry-scheme": reg["scheme"],
        "registry-ca": reg.get("ca_path"),
        "kyverno-namespace": info.get("kyverno_namespace"),
    }
    if info.get("kyverno_values"):
        values.update({"kyverno-mode": "install", "kyverno-values": info["kyverno_values"]})
    lines = [
        f"# The cluster target pointed at the local environment {info['run_id']} "
        "(`signcheck env up`).",
        "# pytest tests --profile <this file>; signcheck fleet --profile <this file> ...",
    ]
    if reg.get("auth") and reg.get("credentials_path"):
        # The password in a file of its own (0600, in the run dir): the profile names the
        # file, never the password, and each environment of a fleet has its own.
        password = json.loads(Path(str(reg["credentials_path"])).read_text())["password"]
        secret = Path(str(info["run_dir"])) / "registry-password"
        secret.touch(mode=0o600)
        secret.write_text(str(password))
        values["registry-username"] = REGISTRY_USER
        values["registry-password-file"] = str(secret)
    # JSON strings are valid TOML basic strings.
    lines += [f"{k} = {json.dumps(str(v))}" for k, v in values.items() if v]
    path = Path(str(info["run_dir"])) / "profile.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _status_rows(state: EnvState) -> dict[str, object]:
    services = [
        {"name": rec.name, "pid": rec.pid, "alive": alive, "log": rec.log}
        for rec, alive in state.service_status()
    ]
    return {
        "run_id": state.run_id,
        "run_dir": str(state.run_dir),
        "phase": state.phase,
        "owner": {"pid": state.owner_pid, "kind": state.owner_kind, "alive": state.owner_alive()},
        "services": services,
    }


def cmd_status(args: argparse.Namespace) -> int:
    runs = _select(args.run)
    rows = [_status_rows(r) for r in runs]
    # Unhealthy: a Ready run with a dead service, or whose owner died (an abandoned run).
    healthy = all(
        s["alive"] and row["owner"]["alive"]  # type: ignore[index]
        for row in rows
        if row["phase"] == "ready"
        for s in row["services"]  # type: ignore[attr-defined]
    )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0 if healthy else 1
    if not rows:
        print(f"no runs under {env_runs()}")
    for row in rows:
        owner = row["owner"]
        assert isinstance(owner, dict)
        state = "alive" if owner["alive"] else "DEAD (abandoned run)"
        who = f"owner pid {owner['pid']} ({owner['kind']})"
        print(f"{row['run_id']}  phase={row['phase']}  {who}: {state}")
        for svc in row["services"]:  # type: ignore[attr-defined]
            print(f"  {svc['name']:<24} pid {svc['pid']:<8} {'alive' if svc['alive'] else 'DEAD'}")
    return 0 if healthy else 1


def cmd_logs(args: argparse.Namespace) -> int:
    runs = _select(args.run)
    if not runs:
        raise ConfigError(f"no runs under {env_runs()}")
    logs_dir = runs[-1].run_dir / "logs"
    files = sorted(logs_dir.glob("*.log"))
    if args.service:
        wanted = logs_dir / f"{args.service}.log"
        if not wanted.is_file():
            names = ", ".join(f.stem for f in files)
            raise ConfigError(f"no log for {args.service!r} in {logs_dir} (logs: {names})")
        _print_tail(wanted, args.tail)
        return 0
    for f in files:
        print(f"==> {f} <==")
        _print_tail(f, 20 if args.tail is None else args.tail)
    return 0


def _print_tail(path: Path, n: int | None) -> None:
    lines = path.read_text(errors="replace").splitlines()
    for line in lines if not n else lines[-n:]:
        print(line)


def cmd_down(args: argparse.Namespace) -> int:
    timeouts = EnvSpec().timeouts
    runs = _select(args.run)
    if args.run is None:
        # By default: what `env up` started, and anything abandoned; never a live test session.
        runs = [r for r in runs if r.owner_kind == "supervisor" or not r.owner_alive()]
    if not runs:
        print("nothing to stop")
    for state in runs:
        if state.phase == "down" and state.keep and not is_alive(state.owner_pid):
            if not args.keep:
                from signcheck.localenv.state import remove_run_dir

                remove_run_dir(state.run_dir)
                print(f"{state.run_id}: removed kept run dir {state.run_dir}")
            continue
        for line in down(state, timeouts, keep=args.keep, force=args.force):
            print(f"{state.run_id}: {line}")
    return 0

"""The process that owns an environment started by `signcheck env up`.

`env up` must return while the services keep running, yet something has to own them: be
their parent (so they are reaped), hold the run's owner lock (so a crash is detectable),
and tear them down in order when asked. `env up` starts this module in a session of its
own and waits for the result file it writes; `env down` sends it SIGTERM.

    python -m signcheck.localenv.supervise RUN_ID RESULT_FILE [--keep]
        [--registry-auth] [--registry-tls] [--nodes kwok|real] [--kyverno process|helm]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback
from pathlib import Path

from signcheck.errors import SigncheckError
from signcheck.localenv.env import LocalEnv
from signcheck.localenv.spec import EnvSpec


def _write_result(path: Path, result: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="signcheck-supervise")
    parser.add_argument("run_id")
    parser.add_argument("result", type=Path)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--registry-auth", action="store_true")
    parser.add_argument("--registry-tls", action="store_true")
    parser.add_argument("--nodes", choices=("kwok", "real"), default="kwok")
    parser.add_argument("--kyverno", choices=("process", "helm"), default="process")
    args = parser.parse_args(argv)

    # Handlers only note the request: a signal in the middle of the boot must not leave
    # half an environment, so teardown runs after start() returns either way. (Blocking the
    # signals instead would be inherited by every service, which then ignores SIGTERM.)
    stop = threading.Event()
    received: list[str] = []

    def note(signum: int, _frame: object) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, note)

    settings = EnvSpec(
        run_id=args.run_id,
        keep=args.keep,
        registry_auth=args.registry_auth,
        registry_tls=args.registry_tls,
        node_kind=args.nodes,
        kyverno=args.kyverno,
    )
    env = LocalEnv(settings, owner_kind="supervisor")
    try:
        info = env.start()
    except SigncheckError as err:
        _write_result(args.result, {"ok": False, "message": err.message, "details": err.details})
        return 2
    except BaseException as err:
        details = "".join(traceback.format_exception(err))
        _write_result(args.result, {"ok": False, "message": str(err), "details": details})
        return 2
    _write_result(
        args.result, {"ok": True, "info": info.as_dict(), "boot_seconds": env.boot_seconds}
    )
    while not stop.is_set():
        stop.wait(1.0)
    print(f"supervisor: {received[0]}, tearing down", flush=True)
    problems = env.stop()
    for problem in problems:
        print(f"supervisor: {problem}", flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

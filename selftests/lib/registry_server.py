"""A real CNCF distribution registry on a free loopback port, for the library's integration
selftests (the local environment has its own; this one exists so oci/cosign can be tested
before and without it)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import bcrypt
import requests

from signcheck.target import Registry
from signcheck.tools import gobuild
from signcheck.wait import until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_registry(
    workdir: Path, username: str | None = None, password: str | None = None
) -> Iterator[Registry]:
    binary = gobuild.ensure(["registry"])["registry"]
    port = free_port()
    auth = ""
    if username and password:
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
        (workdir / "htpasswd").write_text(f"{username}:{hashed}\n")
        auth = f"auth:\n  htpasswd:\n    realm: signcheck\n    path: {workdir / 'htpasswd'}\n"
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n" + auth
    )
    log = (workdir / "registry.log").open("wb")
    proc = subprocess.Popen(
        [str(binary), "serve", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},
        start_new_session=True,
    )

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(
                f"registry exited {proc.returncode}: {(workdir / 'registry.log').read_text()}"
            )
        return requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code in (200, 401)

    try:
        until(
            ready,
            what=f"registry on 127.0.0.1:{port}",
            timeout=20,
            transient=(requests.RequestException,),
        )
        yield Registry(
            host=f"127.0.0.1:{port}",
            scheme="http",
            username=username,
            password=password,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        time.sleep(0)

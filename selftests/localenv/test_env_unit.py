"""LocalEnv without real tools: a partial start undoes itself and names what failed."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from signcheck.errors import EnvironmentNotReady
from signcheck.localenv import EnvSpec, LocalEnv, Timeouts
from signcheck.localenv import env as envmod
from signcheck.localenv.process import is_alive
from signcheck.localenv.state import list_runs

FakeBinary = Callable[[str, str], Path]

# A registry stand-in: reads the addr from `serve config.yml` and answers 200 on /v2/.
FAKE_REGISTRY = f"""
exec {sys.executable} - "$2" <<'PY'
import http.server, sys, yaml
host, port = yaml.safe_load(open(sys.argv[1]))["http"]["addr"].split(":")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"{{}}")
    def log_message(self, *a):
        pass
print("fake registry on", port, flush=True)
http.server.HTTPServer((host, int(port)), H).serve_forever()
PY
"""

FAKE_ETCD = """
echo "etcd starting $*"
echo "listen tcp 127.0.0.1:2380: bind: address already in use" >&2
exit 1
"""


def test_failed_start_names_the_service_and_undoes_the_partial_start(
    private_cache: Path, fake_binary: FakeBinary, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = {name: fake_binary(name, "exec sleep 30\n") for name in envmod.TOOLS}
    paths["registry"] = fake_binary("registry", FAKE_REGISTRY)
    paths["etcd"] = fake_binary("etcd", FAKE_ETCD)
    monkeypatch.setattr(
        envmod,
        "resolve_tools",
        lambda names=envmod.TOOLS: (paths, {n: "v0.0.0" for n in envmod.TOOLS}),
    )
    monkeypatch.setattr(envmod.crdlib, "load_crds", lambda: [])
    env = LocalEnv(
        EnvSpec(
            timeouts=Timeouts(service_ready=10, stop=1),
            seed_etcd=False,
            runs_root=private_cache / "runs",
        )
    )
    with pytest.raises(EnvironmentNotReady) as info:
        env.__enter__()
    err = info.value
    assert err.message == "etcd failed to start: it exited with code 1"
    assert f"command: {paths['etcd']} --name=signcheck --data-dir=" in err.details
    assert "address already in use" in err.details
    # The registry had started: it is stopped again, and the run dir is gone.
    registry = env.services["registry"].process
    assert registry is not None and registry.pid is not None
    assert not is_alive(registry.pid)
    assert not env.run_dir.exists()
    assert list_runs(private_cache / "runs") == []
    # Stopping again is harmless.
    assert env.stop() == []


def test_missing_tools_are_named_together(
    private_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(Exception) as info:
        envmod.resolve_tools(("etcd", "kwok"))
    assert "signcheck tools build etcd kwok" in str(info.value)

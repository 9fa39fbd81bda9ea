"""A misbehaving registry: a small HTTP(S) proxy in front of the run's real registry, with one
listener per fault, so the faults run beside every other test instead of breaking the
registry for all of them.

Kyverno reaches a registry by the host in the image reference, so an image "on the proxy" is
the same repository named by one of the proxy's addresses (`FaultProxy.reference`):

- `pass`: every request forwarded as it is (the control: the proxy itself changes nothing);
- `slow`: every request held `slow_seconds` before it is forwarded (a registry slower than
  the policy's webhook timeout);
- `swap`: a manifest request by tag answered truthfully the first time and with another
  manifest every later time (`swap_tag`), the time-of-check/time-of-use class of
  CVE-2022-47633: a registry that tells the verifier one digest and the pinner another;
- `down`: a port that is bound but never listens, so a connection is refused at once (a
  registry that is down) and no other process can take the port meanwhile.

The proxy authenticates to the real registry with the run's own credentials, as a
pull-through front of a private registry would: Kyverno needs none for the proxy's
addresses (its credentials path is the PRIV scenarios'). It presents the registry's own
serving certificate when the registry speaks TLS (its IP SAN is the loopback address, not a
port), so Kyverno trusts the proxy exactly as far as it trusts the registry.

Everything listens on 127.0.0.1 only and connects only to the registry on loopback. On a real
node the registry runs in the environment's network namespace, where Kyverno (host network
of the node) looks for the proxy too: the listeners are then bound inside that namespace
(see `signcheck.localenv.forward.enter_netns`), while upstream requests go through the
registry's forwarder on the host's loopback.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from signcheck.clients.oci import ACCEPT, PushedImage
from signcheck.localenv import forward
from signcheck.localenv.ports import HOST
from signcheck.localenv.services.registry import serving_pair
from signcheck.localenv.state import EnvState
from signcheck.target import Registry, Target

POLICY_TIMEOUT_SECONDS = 5
"""The webhook timeout of the policy variant the slow registry is tried against (its own:
an ImageValidatingPolicy's timeout is its webhook's). Short, but with room for the variant's
other admissions on a busy two-core machine (about 1 s each at worst there)."""
SLOW_SECONDS = 12.0
"""How long `slow` holds every request: well beyond that timeout, so the API server gives up
first, and short enough that Kyverno's abandoned verification ends within the run."""

MODES = ("pass", "slow", "swap")
"""The listening faults; `down` has a port and no listener."""

_MANIFEST = re.compile(r"^/v2/(?P<repo>.+)/manifests/(?P<ref>[^/]+)$")
# What a registry client needs back besides the body (the rest is the registry's business).
_PASSED_HEADERS = ("Content-Type", "Docker-Content-Digest", "Docker-Distribution-Api-Version")


@dataclass
class Served:
    """One request the proxy got, logged when it arrives and completed when it is answered
    (a held request shows `status` None until then)."""

    mode: str
    method: str
    path: str
    started: float
    """`time.monotonic()` when the request arrived."""
    status: int | None = None
    digest: str | None = None
    """The manifest digest the answer carried (`Docker-Content-Digest`), if any."""
    seconds: float | None = None

    @property
    def reference(self) -> str:
        """The tag or digest of a manifest request, else the path's last part."""
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class _Swap:
    later_digest: str


class FaultProxy:
    """The proxy's listeners and its log. `start()` binds them, `stop()` closes them and
    releases every held request."""

    def __init__(
        self,
        registry: Registry,
        *,
        slow_seconds: float,
        tls: tuple[Path, Path] | None = None,
        netns_pid: int | None = None,
    ) -> None:
        self.registry = registry
        self.slow_seconds = slow_seconds
        self.tls = tls
        self.netns_pid = netns_pid
        self.ports: dict[str, int] = {}
        self.log: list[Served] = []
        self._servers: list[ThreadingHTTPServer] = []
        self._down: socket.socket | None = None
        self._swaps: dict[tuple[str, str], _Swap] = {}
        self._seen: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._upstream = requests.Session()
        if registry.username and registry.password:
            self._upstream.auth = (registry.username, registry.password)
        self._verify: str | bool = str(registry.ca_file) if registry.ca_file else True

    # -- addresses ------------------------------------------------------------------------

    def host(self, mode: str) -> str:
        return f"{HOST}:{self.ports[mode]}"

    def image(self, mode: str, image: PushedImage) -> PushedImage:
        """`image` named through the proxy's `mode` address (same repository path, tag and
        digest)."""
        host, _, path = image.repository.partition("/")
        if host != self.registry.host:
            raise ValueError(f"{image.repository} is not in the proxied registry")
        return replace(image, repository=f"{self.host(mode)}/{path}")

    # -- faults ---------------------------------------------------------------------------

    def swap_tag(self, image: PushedImage, later: PushedImage) -> None:
        """Through `swap`, answer `image`'s tag truthfully once, then with `later`'s manifest
        (pushed to the same repository, so every blob it names is there too)."""
        if later.repository != image.repository:
            raise ValueError("the later manifest must be in the same repository")
        key = (_path(image.repository), image.tag)
        with self._lock:
            self._swaps[key] = _Swap(later.digest)
            self._seen[key] = 0

    def served(self, mode: str, image: PushedImage | None = None) -> list[Served]:
        """What `mode` answered (for `image`'s repository only, when given)."""
        with self._lock:
            entries = [replace(e) for e in self.log]
        prefix = f"/v2/{_path(image.repository)}/" if image else ""
        return [e for e in entries if e.mode == mode and e.path.startswith(prefix)]

    def ask(self, mode: str, image: PushedImage) -> str | None:
        """The digest `mode` answers for `image`'s tag now, asked in-process through the
        code the listeners run (on a real node they listen inside the node's network
        namespace, out of this process's reach). It counts as a request, like any other."""
        path = f"/v2/{_path(image.repository)}/manifests/{image.tag}"
        return self.answer(mode, "HEAD", path, None).headers.get("Docker-Content-Digest")

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        sockets = self._bind([*MODES, "down"])
        for mode in MODES:
            server = _Server(self, mode, sockets[mode])
            self._servers.append(server)
            # A short poll: `stop()` waits for each loop to notice (the default is 0.5 s).
            threading.Thread(
                target=server.serve_forever, args=(0.1,), name=f"faultproxy-{mode}", daemon=True
            ).start()
        self._down = sockets["down"]
        self.ports = {mode: s.getsockname()[1] for mode, s in sockets.items()}
        return self

    def stop(self) -> None:
        self._stopping.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()
        if self._down is not None:
            self._down.close()
            self._down = None
        self._upstream.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _bind(self, modes: list[str]) -> dict[str, socket.socket]:
        """A socket per mode on 127.0.0.1, listening except `down`: in the registry's network
        namespace when it has one of its own (a thread of its own enters it; a socket keeps
        the namespace it was made in)."""
        made: dict[str, socket.socket] = {}
        failed: list[BaseException] = []

        def bind() -> None:
            try:
                if self.netns_pid is not None:
                    forward.enter_netns(self.netns_pid)
                for mode in modes:
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    sock.bind((HOST, 0))
                    if mode != "down":
                        sock.listen(64)
                    made[mode] = sock
            except BaseException as err:
                failed.append(err)

        if self.netns_pid is None:
            bind()
        else:
            worker = threading.Thread(target=bind, name="faultproxy-netns")
            worker.start()
            worker.join()
        if failed:
            for sock in made.values():
                sock.close()
            raise failed[0]
        return made

    # -- one request ----------------------------------------------------------------------

    def answer(self, mode: str, method: str, path: str, accept: str | None) -> _Answer:
        entry = Served(mode, method, path, time.monotonic())
        with self._lock:
            self.log.append(entry)
        if mode == "slow":
            # Released early only when the proxy stops (the run is ending).
            self._stopping.wait(self.slow_seconds)
        upstream_path = self._swapped(path) if mode == "swap" else path
        url = f"{self.registry.scheme}://{self.registry.host}{upstream_path}"
        try:
            got = self._upstream.request(
                method,
                url,
                headers={"Accept": accept or ACCEPT},
                verify=self._verify,
                timeout=30,
            )
            answer = _Answer(
                got.status_code,
                {h: got.headers[h] for h in _PASSED_HEADERS if h in got.headers},
                got.content if method != "HEAD" else b"",
                int(got.headers.get("Content-Length", len(got.content))),
            )
        except requests.RequestException as err:
            body = f"signcheck fault proxy: the registry did not answer: {err}".encode()
            answer = _Answer(502, {"Content-Type": "text/plain"}, body, len(body))
        with self._lock:
            entry.status = answer.status
            entry.digest = answer.headers.get("Docker-Content-Digest")
            entry.seconds = time.monotonic() - entry.started
        return answer

    def _swapped(self, path: str) -> str:
        m = _MANIFEST.match(path)
        if not m:
            return path
        key = (m["repo"], m["ref"])
        with self._lock:
            swap = self._swaps.get(key)
            if swap is None:
                return path
            self._seen[key] += 1
            first = self._seen[key] == 1
        return path if first else f"/v2/{m['repo']}/manifests/{swap.later_digest}"


def image_glob(registry: Registry, run_id: str) -> str:
    """An `imageReferences` pattern for the run's images through any of the proxy's
    addresses (the registry's own included: same IP, any port), decided before the proxy
    starts, so a policy that names it can be applied with every other at the run's start."""
    address = registry.host.rsplit(":", 1)[0]
    return f"{address}:*/{registry.repository_prefix}/{run_id}/*"


def unavailable(target: Target) -> str:
    """Why no fault proxy can stand in front of `target`'s registry ("" when one can): it
    must be a registry of this run on this machine, so Kyverno reaches the proxy's loopback
    addresses where it reaches the registry's."""
    if not target.extra.get("env_run_dir"):
        return (
            "the registry is not one this run started on this machine: Kyverno could not "
            "reach a fault proxy on this machine's loopback (the local target has one)"
        )
    return ""


def for_target(target: Target, *, slow_seconds: float) -> FaultProxy:
    """A proxy (not started) in front of the local target's registry: in the registry's
    network namespace, and with its serving pair when it speaks TLS."""
    env_dir = Path(str(target.extra["env_run_dir"]))
    state = EnvState.load(env_dir)
    pid = int(((state.info or {}).get("pids") or {})["registry"])
    own = os.stat("/proc/self/ns/net").st_ino
    netns_pid = None if os.stat(f"/proc/{pid}/ns/net").st_ino == own else pid
    tls = serving_pair(env_dir / "registry") if target.registry.scheme == "https" else None
    return FaultProxy(target.registry, slow_seconds=slow_seconds, tls=tls, netns_pid=netns_pid)


def _path(repository: str) -> str:
    """The repository's path in the registry (what follows host:port)."""
    return repository.partition("/")[2]


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    length: int


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: FaultProxy, mode: str, sock: socket.socket) -> None:
        super().__init__(sock.getsockname(), _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.proxy = proxy
        self.mode = mode
        self.context: ssl.SSLContext | None = None
        if proxy.tls is not None:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(*map(str, proxy.tls))

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up or fail the handshake are their own business, not the run's.
        return

    def get_request(self) -> tuple[Any, Any]:
        conn, addr = self.socket.accept()
        if self.context is not None:
            # The handshake happens in the request's own thread, not in the accept loop.
            conn = self.context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, addr


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            # A failed handshake (a client that does not trust the registry's CA) ends the
            # connection here; `handle_error` keeps it off stderr.
            self.request.settimeout(30)
            self.request.do_handshake()
        super().setup()

    def do_GET(self) -> None:
        self._relay("GET")

    def do_HEAD(self) -> None:
        self._relay("HEAD")

    def _relay(self, method: str) -> None:
        answer = self.server.proxy.answer(
            self.server.mode, method, self.path, self.headers.get("Accept")
        )
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(answer.length))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        # The proxy's own log (`FaultProxy.log`) is what the tests read; stderr stays quiet.
        return

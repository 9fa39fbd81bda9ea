"""The fault proxy in front of a real registry (CNCF distribution with htpasswd auth): each
address does exactly its fault and nothing else, so a REG scenario's outcome is Kyverno's
doing. And the API server's timeout message read as a timeout, naming its seconds."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from signcheck.artefacts.faultproxy import FaultProxy, image_glob
from signcheck.clients import admission, oci
from signcheck.localenv import pki
from signcheck.target import Registry

pytestmark = pytest.mark.integration


@pytest.fixture
def proxy(registry: Registry) -> Iterator[FaultProxy]:
    # Without auth: the auth registry checks a bcrypt hash on every request (slow here).
    with FaultProxy(registry, slow_seconds=1.0) as running:
        yield running


def _head(proxy: FaultProxy, mode: str, image: oci.PushedImage, **kw: object) -> requests.Response:
    through = proxy.image(mode, image)
    path = through.repository.partition("/")[2]
    return requests.head(
        f"http://{proxy.host(mode)}/v2/{path}/manifests/{image.tag}",
        headers={"Accept": oci.ACCEPT},
        timeout=10,
        **kw,  # type: ignore[arg-type]
    )


def test_pass_is_the_registry_without_client_credentials(
    auth_registry: Registry, run_id: str
) -> None:
    client = oci.OciClient(auth_registry)
    image = client.push_image(auth_registry.repository(run_id, "app"), run_id)
    anonymous = requests.get(f"{auth_registry.scheme}://{auth_registry.host}/v2/", timeout=5)
    assert anonymous.status_code == 401  # the registry itself wants credentials
    with FaultProxy(auth_registry, slow_seconds=1.0) as proxy:
        got = _head(proxy, "pass", image)
        assert got.status_code == 200 and got.headers["Docker-Content-Digest"] == image.digest
        assert proxy.image("pass", image).by_tag.startswith(f"127.0.0.1:{proxy.ports['pass']}/")
    assert image_glob(auth_registry, run_id) == f"127.0.0.1:*/signcheck/{run_id}/*"


def test_swap_answers_once_truthfully_then_the_other_manifest(
    proxy: FaultProxy, registry: Registry, run_id: str
) -> None:
    client = oci.OciClient(registry)
    repo = registry.repository(run_id, "app")
    first = client.push_image(repo, "first")
    later = client.push_image(repo, "later", nonce="other")
    proxy.swap_tag(first, later)
    answers = [_head(proxy, "swap", first).headers["Docker-Content-Digest"] for _ in range(3)]
    assert answers == [first.digest, later.digest, later.digest]
    assert proxy.ask("swap", first) == later.digest
    # Unregistered tags and the other addresses are untouched by the swap.
    assert _head(proxy, "pass", first).headers["Docker-Content-Digest"] == first.digest
    assert [e.digest for e in proxy.served("swap", first)][:3] == answers


def test_slow_holds_then_answers(proxy: FaultProxy, registry: Registry, run_id: str) -> None:
    client = oci.OciClient(registry)
    image = client.push_image(registry.repository(run_id, "app"), run_id)
    answered: list[float] = []
    started = time.monotonic()
    worker = threading.Thread(
        target=lambda: answered.append(_head(proxy, "slow", image).status_code)
    )
    worker.start()
    time.sleep(0.5)
    held = proxy.served("slow", image)
    assert held and held[0].status is None, held  # arrived, not answered yet
    worker.join(timeout=10)
    assert answered == [200] and time.monotonic() - started >= 1.0


def test_down_refuses_and_keeps_its_port(proxy: FaultProxy) -> None:
    port = proxy.ports["down"]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with socket.socket() as other, pytest.raises(OSError):
        other.bind(("127.0.0.1", port))


def test_tls_with_the_registrys_serving_pair(
    registry: Registry, run_id: str, tmp_path: Path
) -> None:
    ca = pki.new_ca("selftest CA")
    ca_cert, _ = ca.write(tmp_path, "ca")
    pair = pki.issue(ca, "registry", ips=["127.0.0.1"], dns=[], server=True)
    tls = pair.write(tmp_path, "registry")
    client = oci.OciClient(registry)
    image = client.push_image(registry.repository(run_id, "app"), run_id)
    with FaultProxy(registry, slow_seconds=1.0, tls=tls) as tls_proxy:
        path = image.repository.partition("/")[2]
        url = f"https://{tls_proxy.host('pass')}/v2/{path}/manifests/{image.tag}"
        got = requests.head(url, headers={"Accept": oci.ACCEPT}, verify=str(ca_cert), timeout=10)
        assert got.headers["Docker-Content-Digest"] == image.digest
        with pytest.raises(requests.exceptions.SSLError):
            requests.head(url, timeout=10)  # a client that does not trust the CA


@pytest.mark.parametrize("seconds", [3, 30])
def test_webhook_timeout_is_named(seconds: int) -> None:
    # The API server's words when a fail-closed webhook does not answer in time (captured).
    message = (
        'Internal error occurred: failed calling webhook "ivpol.mutate.kyverno.svc-fail-'
        'finegrained-p": failed to call webhook: Post "https://127.0.0.1:48283/ivpol/mutate/p'
        f'?timeout={seconds}s": context deadline exceeded'
    )
    d = admission.parse_denial(message, 500)
    assert d.webhook_unavailable and d.webhook_timed_out
    assert d.webhook_timeout_seconds == seconds
    assert d.verdict == "environment: webhook timed out"
    refused = admission.parse_denial(message.replace("context deadline exceeded", "EOF"), 500)
    assert not refused.webhook_timed_out and refused.webhook_timeout_seconds is None
    assert refused.verdict == "environment: webhook unavailable"

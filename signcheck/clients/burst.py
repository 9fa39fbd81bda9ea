"""Pod creates at once, each timed around its own API call: what a burst of deployments does
to admission (the LOAD scenario and `benchmarks.load`), and a create that must not block the
test that started it (a slow registry's admission, REG-01).

Every thread of a burst shares one API client whose connection pool is as large as the
burst, so a create waits for the API server and Kyverno, never for a free connection of the
client (the default pool holds 4). The typed pod API is used, not the dynamic client: no
discovery round trips inside the timed window.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from signcheck.clients.admission import Admission, Admitted, parse_denial
from signcheck.clients.k8sapi import status_message


@dataclass(frozen=True)
class Create:
    """One pod to create: `role` says what it is (`signed`, `unsigned`...)."""

    role: str
    pod: dict[str, Any]
    image: str


@dataclass(frozen=True)
class Timed:
    create: Create
    result: Admission
    seconds: float
    """Wall time of the API call, request to answer."""
    started: float
    """`time.monotonic()` when the call was made."""


def pods_api(kubeconfig: Path, context: str | None, pool: int) -> client.CoreV1Api:
    """A pod API whose client keeps up to `pool` connections open."""
    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig),
        context=context,
        client_configuration=configuration,
        persist_config=False,
    )
    configuration.connection_pool_maxsize = max(pool, 1)
    return client.CoreV1Api(client.ApiClient(configuration))


def create_pod(api: client.CoreV1Api, create: Create, *, dry_run: bool) -> Timed:
    """Create one pod (`dry_run`: through admission, not stored); a refusal is a parsed
    `Denied`, never an exception."""
    obj = create.pod
    namespace = obj["metadata"]["namespace"]
    body: Any = obj  # the client serialises a plain manifest as it is
    started = time.monotonic()
    try:
        raw = api.api_client.sanitize_for_serialization(
            api.create_namespaced_pod(namespace, body, dry_run="All" if dry_run else None)
        )
        result: Admission = Admitted(raw)
    except ApiException as err:
        message, code = status_message(err.body, str(err))
        if err.status not in (400, 403, 422, 500) and "admission webhook" not in message:
            raise
        result = parse_denial(message, code or int(err.status or 0), create.image)
    return Timed(create, result, time.monotonic() - started, started)


def burst(
    api: client.CoreV1Api, creates: Sequence[Create], *, parallel: int, dry_run: bool
) -> list[Timed]:
    """Every create, `parallel` at a time, in the order given: `parallel` workers start
    together (a barrier, so the first creates do not finish before the last workers are
    up), each taking the next create as soon as its previous one is answered."""
    pending: queue.SimpleQueue[tuple[int, Create]] = queue.SimpleQueue()
    for item in enumerate(creates):
        pending.put(item)
    workers = max(1, min(parallel, len(creates)))
    gate = threading.Barrier(workers)
    done: dict[int, Timed] = {}

    def work() -> None:
        gate.wait(timeout=30)
        while True:
            try:
                index, create = pending.get_nowait()
            except queue.Empty:
                return
            done[index] = create_pod(api, create, dry_run=dry_run)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(work) for _ in range(workers)]:
            future.result()
    return [done[i] for i in range(len(creates))]


def in_background(run: Callable[[], Timed]) -> Future[Timed]:
    """`run()` on a thread of its own, so the test that starts it goes on meanwhile."""
    future: Future[Timed] = Future()

    def target() -> None:
        try:
            future.set_result(run())
        except BaseException as err:
            future.set_exception(err)

    threading.Thread(target=target, name="signcheck-background-create", daemon=True).start()
    return future

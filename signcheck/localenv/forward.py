"""From host loopback ports into the run's network namespace, the way `kubectl
port-forward` works: `python -m signcheck.localenv.forward --netns-pid PID --listen PORT
--to IP:PORT`, or `--port P` (repeatable) for 127.0.0.1:P outside to 127.0.0.1:P inside, so
an address means the same on both sides (a kubeconfig, an image reference).
`--reverse IN:OUT` goes the other way: a listener on 127.0.0.1:IN inside the namespace whose
connections are made to 127.0.0.1:OUT on the host (keyless signing's Fulcio reaching the
apiserver's issuer).

The listener is bound on 127.0.0.1 before the process enters the namespace; a socket keeps
the namespace it was made in, so accepted connections are on host loopback while every
connection the forwarder opens is made inside. The host side never gets an address outside
loopback and nothing inside gets a route out.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import socket
import threading

CLONE_NEWNET = 0x40000000


def enter_netns(pid: int | str) -> None:
    """Move the calling thread (only it: setns is per thread) into pid's network namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into the network namespace of pid {pid}")
    finally:
        os.close(fd)


def _listener(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    return sock


def _inside_listeners(netns_pid: int, ports: list[int]) -> list[socket.socket]:
    """Listeners bound inside the namespace, made on a thread of their own so this one stays
    on the host (a socket keeps the namespace it was made in)."""
    made: list[socket.socket] = []
    failed: list[BaseException] = []

    def bind() -> None:
        try:
            enter_netns(netns_pid)
            made.extend(_listener(p) for p in ports)
        except BaseException as err:
            failed.append(err)

    thread = threading.Thread(target=bind)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return made


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _serve(conn: socket.socket, target: tuple[str, int]) -> None:
    try:
        inside = socket.create_connection(target, timeout=10)
    except OSError:
        conn.close()
        return
    inside.settimeout(None)
    back = threading.Thread(target=_pipe, args=(inside, conn), daemon=True)
    back.start()
    _pipe(conn, inside)
    back.join()
    conn.close()
    inside.close()


def serve(
    netns_pid: int,
    routes: list[tuple[int, tuple[str, int]]],
    reverse: list[tuple[int, int]] | None = None,
) -> None:
    reverse = reverse or []
    # Reverse listeners first, while this thread is still on the host: their connections
    # are opened from the host by threads started before this one enters the namespace.
    inside = _inside_listeners(netns_pid, [i for i, _ in reverse])
    for sock, (_, out) in zip(inside, reverse, strict=True):
        threading.Thread(target=_accept, args=(sock, ("127.0.0.1", out)), daemon=True).start()
    listeners = [(_listener(listen), target) for listen, target in routes]
    if not listeners:
        threading.Event().wait()
    # Threads started from here on are in the namespace too (it is per thread; new threads
    # inherit the namespace of the thread that starts them).
    enter_netns(netns_pid)
    for sock, target in listeners[1:]:
        threading.Thread(target=_accept, args=(sock, target), daemon=True).start()
    _accept(*listeners[0])


def _accept(listener: socket.socket, target: tuple[str, int]) -> None:
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve, args=(conn, target), daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m signcheck.localenv.forward")
    parser.add_argument("--netns-pid", type=int, required=True)
    parser.add_argument("--listen", type=int, help="port on 127.0.0.1")
    parser.add_argument("--to", help="IP:PORT inside the namespace")
    parser.add_argument("--port", type=int, action="append", default=[], help="same port")
    parser.add_argument(
        "--reverse", action="append", default=[], help="IN:OUT, inside port to host port"
    )
    args = parser.parse_args()
    reverse = [(int(a), int(b)) for a, _, b in (r.partition(":") for r in args.reverse)]
    routes = [(p, ("127.0.0.1", p)) for p in args.port]
    if args.listen and args.to:
        host, _, port = args.to.rpartition(":")
        routes.append((args.listen, (host, int(port))))
    if not routes and not reverse:
        parser.error("give --listen and --to, --port or --reverse")
    serve(args.netns_pid, routes, reverse)


if __name__ == "__main__":
    main()

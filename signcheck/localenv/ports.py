"""Free loopback ports for the services.

The kernel picks a free port (bind to port 0), but that port is only free until someone
binds it, and our services bind seconds later. Two environments booting side by side could
be handed the same port in that window, so every port handed out is also reserved in a
shared directory for a while: another allocator skips reserved ports. Once the service has
bound it, the kernel itself stops handing it out, so reservations only need to outlive boot.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path

from signcheck import places

HOST = "127.0.0.1"
RESERVATION_TTL = 600.0


def _reservations_dir() -> Path:
    path = places.cache_root() / "ports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _reserve(port: int, directory: Path) -> bool:
    marker = directory / str(port)
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        with contextlib.suppress(OSError):
            if time.time() - marker.stat().st_mtime > RESERVATION_TTL:
                marker.unlink()
                return _reserve(port, directory)
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(str(os.getpid()))
    return True


_pruned = False


def _prune(directory: Path) -> None:
    """Drop expired reservations, once per process, so the directory does not grow."""
    global _pruned
    if _pruned:
        return
    _pruned = True
    cutoff = time.time() - RESERVATION_TTL
    for marker in directory.iterdir():
        with contextlib.suppress(OSError):
            if marker.stat().st_mtime < cutoff:
                marker.unlink()


def free_port(attempts: int = 50) -> int:
    directory = _reservations_dir()
    _prune(directory)
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if _reserve(port, directory):
            return port
    raise OSError(f"no free port on {HOST} after {attempts} attempts")


def is_listening(port: int, host: str = HOST, timeout: float = 0.2) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0

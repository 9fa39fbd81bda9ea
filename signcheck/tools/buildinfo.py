"""Read the module versions a Go binary embeds (what `go version -m` prints), without Go.

Binaries such as Kyverno's admission controller have no version command; their build info
is still the binary's own statement of what it was built from.
"""

from __future__ import annotations

import mmap
from pathlib import Path

_MAGIC = b"\xff Go buildinf:"
_HEADER = 32
_FLAG_INLINE = 0x2


def _uvarint(buf: bytes | mmap.mmap, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("malformed varint in Go build info")


def read_modinfo(path: Path) -> str:
    """The raw module info text (path/mod/dep lines), or '' if the binary has none.

    Only the inline-string layout of Go >= 1.18 is supported; older binaries return ''.
    """
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        start = buf.find(_MAGIC)
        if start < 0 or start + _HEADER > len(buf):
            return ""
        flags = buf[start + len(_MAGIC) + 1]
        if not flags & _FLAG_INLINE:
            return ""
        pos = start + _HEADER
        for index in range(2):
            length, pos = _uvarint(buf, pos)
            text = bytes(buf[pos : pos + length])
            pos += length
            if index == 1:
                # The module info is framed by 16 sentinel bytes on either side.
                return text[16:-16].decode("utf-8", "replace") if len(text) > 32 else ""
    return ""


def module_version(path: Path, module: str) -> str | None:
    """The version of `module` in the binary: the main module or one of its dependencies."""
    for line in read_modinfo(path).splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and fields[0] in ("mod", "dep") and fields[1] == module:
            return fields[2]
        # A replaced dependency is followed by a "=>" line; the pin is the required version.
    return None

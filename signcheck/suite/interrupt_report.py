"""Keep pytest's report of an interrupt from crashing.

On Python 3.11 a traceback entry can have no line number (`tb_lineno` is None) when the
interrupt lands on an instruction that has none; pytest then fails while rendering the
KeyboardInterrupt (`TypeError: unsupported operand type(s) for -: 'NoneType' and 'int'`),
and a Ctrl-C or SIGTERM run exits 1 instead of 2 ("interrupted"). Seen once in CI on a
SIGTERM mid-run. The entries without a line say nothing a reader could use: drop them.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any


def drop_lineless_entries(excinfo: Any) -> None:
    """Unlink traceback entries without a line number from `excinfo`'s traceback."""
    head = excinfo.tb
    while head is not None and head.tb_lineno is None:
        head = head.tb_next
    entry = head
    while entry is not None and entry.tb_next is not None:
        if entry.tb_next.tb_lineno is None:
            entry.tb_next = entry.tb_next.tb_next
        else:
            entry = entry.tb_next
    if head is not excinfo.tb and head is not None:
        if isinstance(head, TracebackType):
            excinfo.value.__traceback__ = head
        # pytest reads the traceback from its own tuple; it has no public setter.
        excinfo._excinfo = (excinfo.type, excinfo.value, head)
        excinfo._traceback = None

"""An interrupt's traceback entries without a line number (Python 3.11 can make them) are
dropped before pytest renders it, so a Ctrl-C or SIGTERM run still exits 'interrupted'."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from signcheck.suite.interrupt_report import drop_lineless_entries


def _chain(*linenos: int | None) -> SimpleNamespace:
    head = None
    for lineno in reversed(linenos):
        head = SimpleNamespace(tb_lineno=lineno, tb_next=head)
    assert head is not None
    return head


def _linenos(tb: SimpleNamespace | None) -> list[int | None]:
    out = []
    while tb is not None:
        out.append(tb.tb_lineno)
        tb = tb.tb_next
    return out


def test_lineless_entries_are_unlinked_inside_and_at_the_head() -> None:
    value = KeyboardInterrupt("SIGTERM")
    tb = _chain(None, 10, None, None, 20, None)
    excinfo = SimpleNamespace(tb=tb, type=KeyboardInterrupt, value=value, _excinfo=None)
    drop_lineless_entries(excinfo)
    head = excinfo._excinfo[2]
    assert _linenos(head) == [10, 20]


def test_a_real_traceback_is_left_as_it_is() -> None:
    # Control: every entry of an ordinary traceback has a line; nothing changes.
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        excinfo = pytest.ExceptionInfo.from_exc_info(sys.exc_info())  # type: ignore[arg-type]
    before = excinfo.tb
    drop_lineless_entries(excinfo)
    assert excinfo.tb is before
    assert "KeyboardInterrupt" in str(excinfo.getrepr())

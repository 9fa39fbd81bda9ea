"""A pytest plugin for the suite runs the safety selftests interrupt: hold one test open.

An interrupt test must land its signal while the run is provably mid-test. Polling for a
namespace and then signalling races the run on a loaded machine (in CI the seed scenarios
once finished between the poll and the SIGINT, and the run exited 0). With this plugin the
named test, after its body ran and while its fixtures (namespace, pods) still exist, writes
`held` into the hold directory and waits for `release` there: a signal sent after `held`
appears always finds the run mid-test. The selftests load it with `-p`; the suite never does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator
from pathlib import Path

import pytest

HOLD_AT = "SIGNCHECK_SELFTEST_HOLD_AT"
HOLD_DIR = "SIGNCHECK_SELFTEST_HOLD_DIR"
# Long enough for any selftest to signal or release, short enough that a forgotten hold
# ends the run instead of the CI job's budget.
MAX_HOLD_S = 600.0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    result = yield
    name, where = os.environ.get(HOLD_AT), os.environ.get(HOLD_DIR)
    if name and where and item.name.split("[")[0] == name:
        hold = Path(where)
        if not (hold / "held").exists():  # only the first match: xdist runs it once anyway
            hold.mkdir(parents=True, exist_ok=True)
            (hold / "held").write_text(item.nodeid)
            deadline = time.monotonic() + MAX_HOLD_S
            while not (hold / "release").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
    return result

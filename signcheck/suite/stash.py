"""What a test leaves on its item for the reports (read by the plugin's report hooks)."""

from __future__ import annotations

from typing import Any

import pytest

ADMISSIONS = pytest.StashKey[list[dict[str, Any]]]()
STARTED = pytest.StashKey[float]()
"""When the test's setup began (epoch s): the evidence's Kyverno log window opens there."""
NAMESPACE = pytest.StashKey[str]()
COMPAT = pytest.StashKey[dict[str, Any]]()
"""A compatibility result a test recorded (signature format x policy API): reported as a
result of its own, never a silent skip."""

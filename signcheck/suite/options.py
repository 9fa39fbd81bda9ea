"""The suite's command-line options, and the settings they make.

Registered through the `pytest11` entry point, so an installed signcheck gives `pytest --help`
its options; it does nothing else: the run itself (claims, reaping, reports) starts only where
`signcheck.suite.plugin` is loaded (the project's conftest.py, or `-p signcheck.suite.plugin`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from signcheck.settings import profile
from signcheck.settings.config import SABOTAGE, Settings
from signcheck.timeouts import Timeouts


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("signcheck", "signcheck conformance suite")
    # Options that a profile or SIGNCHECK_* variables can also set (CLI > env > profile).
    profile.add_options(g)
    g.addoption(
        "--signcheck-reports",
        default="reports",
        help="directory for report.html, junit.xml, summary.json ('' disables)",
    )
    g.addoption(
        "--signcheck-sabotage",
        choices=SABOTAGE,
        default="none",
        help="break the setup on purpose (selftests prove the suite notices)",
    )


def settings_from(config: pytest.Config) -> Settings:
    cli = {o.field: config.getoption(o.field) for o in profile.OPTIONS}
    cli["profile"] = config.getoption("profile")
    return Settings.from_sources(
        cli,
        reports_dir=Path(config.getoption("signcheck_reports") or "reports"),
        sabotage=config.getoption("signcheck_sabotage"),
        timeouts=Timeouts.from_env(),
    )

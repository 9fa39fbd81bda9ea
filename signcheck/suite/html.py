"""pytest-html's page: the scenario column, the title, the catalogue and compatibility tables."""

from __future__ import annotations

from typing import Any

import pytest

from signcheck.report import catalogue
from signcheck.report.summary import compatibility_html
from signcheck.suite.collector import Collector


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_header(cells: list[str]) -> None:
    cells.insert(1, '<th class="sortable" data-column-type="scenario">Scenario</th>')
    cells.insert(2, "<th>Seed step</th>")


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_row(report: pytest.TestReport, cells: list[str]) -> None:
    from html import escape

    props = dict(report.user_properties)
    cells.insert(1, f'<td class="col-scenario">{escape(str(props.get("scenario", "")))}</td>')
    cells.insert(2, f"<td>{escape(str(props.get('seed_step', '')))}</td>")


@pytest.hookimpl(optionalhook=True)
def pytest_html_report_title(report: Any) -> None:
    report.title = "signcheck conformance report"


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_summary(
    prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session
) -> None:
    """The scenario catalogue (with this run's outcomes) and the compatibility results."""
    collector = session.config.pluginmanager.get_plugin("signcheck-collector")
    if not isinstance(collector, Collector):
        return
    tests = list(collector.by_id.values())
    compat = compatibility_html(tests)
    if compat:
        postfix.append(compat)
    rows = [
        {
            "id": t.scenario,
            "title": t.step,
            "proves": t.proves,
            "expect": t.expect,
            "outcome": t.outcome + (f" ({t.failure})" if t.failure else ""),
        }
        for t in tests
        if t.scenario
    ]
    section = catalogue.render_html(rows)
    if section:
        postfix.append(section)

"""pytest-html's page: the scenario columns, the title, and signcheck's block at the top.

The block (`signcheck.report.page`) needs the run's verdict, which exists only once the run
has finished: after fixture teardown and the target's teardown (its versions, its problems
and the exit code come from there). pytest-html writes its page earlier, in its own trylast
`pytest_sessionfinish`, which pytest calls before the collector's (both trylast; the later
registered, the collector, goes last). So pytest-html writes a placeholder, and `complete`
replaces it with the block rendered from the concluded summary, the same object that
summary.json is written from: the page cannot show another verdict than summary.json's.
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path
from typing import Any

import pytest

from signcheck.report import page
from signcheck.report.summary import RunSummary
from signcheck.suite.session import find_run


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_header(cells: list[str]) -> None:
    cells.insert(1, '<th class="sortable" data-column-type="scenario">Scenario</th>')
    cells.insert(2, "<th>Seed step</th>")


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_row(report: pytest.TestReport, cells: list[str]) -> None:
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
    run = find_run(session.config)
    if run is None or not run.is_owner or not run.judges:
        return
    # Should the order of the two sessionfinish hooks ever turn, the block is complete now.
    prefix.append(page.render(run.summary) if run.finished else page.placeholder())


def complete(config: pytest.Config, summary: RunSummary) -> None:
    """Put the finished run's block into the page pytest-html wrote (if it wrote one)."""
    option = getattr(config.option, "htmlpath", None)
    if not option:
        return
    # Where pytest-html writes it: relative to the working directory, variables expanded.
    path = Path.cwd() / Path(os.path.expandvars(option)).expanduser()
    if not path.is_file():
        return
    text = page.fill(path.read_text(encoding="utf-8"), page.render(summary))
    if text is None:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)

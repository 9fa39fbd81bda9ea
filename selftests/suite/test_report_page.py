"""The report a person opens first, checked as a person would: a real conformance run on the
local target, its report.html opened in headless Chromium (Debian's `chromium`) with no
network, a screenshot taken, and the DOM after the page's scripts ran asserted to open with
the verdict summary.json has, the cluster's versions and the findings, in the promised order.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from signcheck.report import page, timeline
from signcheck.report import summary as summaries
from signcheck.report.summary import RunSummary

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium")

ORDER = (
    "sc-verdict",
    "sc-cluster",
    "sc-findings",
    "sc-seed",
    "sc-catalogue",
    "sc-timeline",
    "environment",
    "results-table",
)
"""Top to bottom as laid out: the block's sections, then pytest-html's environment and its
results table (CSS moves them below the block: their order in the file is not the page's)."""

MEASURE = (
    "<script>for (const id of %s) { const e = document.getElementById(id);"
    " document.body.setAttribute('data-top-' + id,"
    " e ? Math.round(e.getBoundingClientRect().top + window.scrollY) : -1) }</script>"
)
"""Appended to a copy of the page: where each section landed, as attributes in the DOM dump."""


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-sync",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            # Any request for a host goes to a closed port: the report is self-contained,
            # and a page that needed the network would render without what it fetched.
            "--proxy-server=http://127.0.0.1:9",
            "--proxy-bypass-list=<-loopback>",
            # Its own profile: other Chromium processes on this machine keep theirs.
            f"--user-data-dir={tmp / 'chromium-profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )


class _Dom(HTMLParser):
    """The ids in document order, and the text under each element that has one."""

    VOID = frozenset({"br", "img", "input", "meta", "link", "hr", "col", "source", "wbr"})
    BREAKS = frozenset({"br", "p", "div", "li", "tr", "td", "th", "dt", "dd", "h2", "h3", "pre"})
    """Elements whose edges separate words, as a browser lays them out."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.texts: dict[str, list[str]] = {}
        self.classes: list[str] = []
        self.body: dict[str, str | None] = {}
        self._open: list[tuple[str, str | None]] = []
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if a.get("id"):
            self.ids.append(str(a["id"]))
        self.classes += str(a.get("class") or "").split()
        self._break(tag)
        if tag not in self.VOID:
            self._open.append((tag, a.get("id")))

    def handle_endtag(self, tag: str) -> None:
        self._break(tag)
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i][0] == tag:
                del self._open[i:]
                return

    def handle_data(self, data: str) -> None:
        for _, element_id in self._open:
            if element_id:
                self.texts.setdefault(element_id, []).append(data)

    def _break(self, tag: str) -> None:
        if tag in self.BREAKS:
            self.handle_data(" ")

    def text(self, element_id: str) -> str:
        return " ".join("".join(self.texts.get(element_id, [])).split())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The seed's steps and the tag re-pointing attacks (ATK-02.cpol is a finding on a
    healthy local target), with reports in a directory of the test's own."""
    pytest.importorskip("signcheck.localenv", reason="signcheck.localenv not present")
    reports = tmp_path_factory.mktemp("reports")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/test_seed.py",
            "tests/test_teardown.py",
            "tests/test_policy_reporter.py",
            "tests/test_attacks.py",
            "-k",
            "not test_attacks or repointed",
            "-p",
            "no:cacheprovider",
            "-q",
            "--signcheck-reports",
            str(reports),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert (reports / "summary.json").is_file(), proc.stdout[-4000:] + proc.stderr[-2000:]
    summary = json.loads((reports / "summary.json").read_text())
    return {"proc": proc, "reports": reports, "summary": summary}


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_report_opens_with_the_verdict_versions_and_findings(
    run: dict[str, Any], tmp_path: Path
) -> None:
    summary, html_path = run["summary"], run["reports"] / "report.html"
    assert run["proc"].returncode == summary["verdict"]["exit_code"], run["proc"].stdout[-3000:]
    shot = tmp_path / "report.png"
    taken = _chromium(
        tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", html_path.as_uri()
    )
    assert shot.is_file(), taken.stderr[-2000:]
    head = shot.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", head[16:24]) == (1280, 2000)

    measured = tmp_path / "measured.html"
    probe = MEASURE % json.dumps(list(ORDER))
    measured.write_text(html_path.read_text().replace("</body>", probe + "</body>"))
    dumped = _chromium(tmp_path, "--window-size=1280,2000", "--dump-dom", measured.as_uri())
    dom = _Dom(dumped.stdout)
    # The verdict on the page is summary.json's (the block is filled after the run finished).
    assert dom.text("sc-verdict") == summary["verdict"]["sentence"]
    assert summary["verdict"]["state"] == "enforced", summary["verdict"]
    assert "The run had not finished" not in dumped.stdout
    facts = dom.text("sc-facts")
    versions = summary["versions"]
    assert f"Kubernetes API server {versions['kube-apiserver']}" in facts
    assert f"Kyverno {versions['kyverno']} — {summary['environment']['kyverno']}" in facts
    assert f"cosign {versions['cosign']}" in facts
    assert "Nodes kwok (fake)" in facts

    finding = dom.text("finding-ATK-02.cpol")
    expected = next(f for f in summary["findings"] if f["id"] == "ATK-02.cpol")
    assert finding.startswith("HIGH ATK-02.cpol: an unsigned digest was admitted"), finding
    assert " ".join(expected["remediation"].replace("`", "").split()) in finding
    assert f'href="{expected["reference"]}"' in dumped.stdout

    steps = dom.text("sc-seed-steps")
    for n in range(1, 10):
        assert f"SEED-0{n}" in steps
    assert "DENIED by mutate.kyverno.svc-fail/check-image/check-image" in steps

    # In the promised order, pytest-html's own table last; its script filled the table
    # (one body per test), so this is the DOM a person sees, not the file as written.
    tops = [int(str(dom.body.get(f"data-top-{i}"))) for i in ORDER]
    assert 0 < tops[0] < 300 and tops == sorted(tops), dict(zip(ORDER, tops, strict=True))
    assert dom.classes.count("results-table-row") >= len(summary["tests"])


@pytest.mark.integration
def test_report_needs_nothing_from_elsewhere(run: dict[str, Any]) -> None:
    markup = (run["reports"] / "report.html").read_text()
    # pytest-html's templates hold an empty <img src="">: only a URL would fetch anything.
    assert not re.search(r"""\bsrc=["']?(https?:)?//""", markup)
    assert not re.search(r"<link[^>]+href=", markup)
    assert not re.search(r"""url\(["']?(https?:)?//|@import""", markup)
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="sc-timeline"' in markup
    phases = [i["phase"] for i in run["summary"]["timeline"]]
    assert {"environment boot", "images", "signing", "policy ready", "tests", "teardown"} <= set(
        phases
    )


def test_fill_replaces_the_placeholder_once_and_again() -> None:
    written = f"<body><div>{page.placeholder()}</div><footer>x</footer></body>"
    summary = RunSummary("run-1", "local", "2026-01-01T00:00:00Z")
    summary.conclude("fail")
    filled = page.fill(written, page.render(summary))
    assert filled is not None and "The run had not finished" not in filled
    assert 'id="sc-verdict"' in filled and filled.endswith("</div><footer>x</footer></body>")
    assert page.fill(filled, page.render(summary)) == filled
    assert page.fill("<body>no block</body>", "x") is None


def test_render_escapes_and_shows_what_was_not_inspected() -> None:
    summary = RunSummary("run-1", "local", "2026-01-01T00:00:00Z")
    summary.tests = [
        summaries.TestResult("t::a", "pass", 0.1, scenario="SEED-01", step="<b>sign</b>")
    ]
    summary.conclude("fail")
    block = page.render(summary)
    assert "&lt;b&gt;sign&lt;/b&gt;" in block and "<b>sign</b>" not in block
    assert "not inspected" in block
    hook = {"name": "w", "failurePolicy": "Ignore", "acts_on_pods": True}
    summary.cluster = {"kyverno_webhook_configurations": {"cfg": {"webhooks": [hook]}}}
    assert "fail-open" in page.render(summary)


def test_timeline_starts_tests_after_the_session_setup_inside_their_window() -> None:
    intervals = [
        ["environment boot", 100.0, 110.0],
        ["tests", 110.0, 150.0],
        ["images", 110.5, 112.0],
        ["signing", 112.0, 115.0],
        ["signing", 113.0, 116.0],
        ["teardown", 150.0, 152.0],
    ]
    items = timeline.from_intervals(intervals, origin=100.0)
    assert items == [
        {"phase": "environment boot", "start": 0.0, "end": 10.0},
        {"phase": "images", "start": 10.5, "end": 12.0},
        {"phase": "signing", "start": 12.0, "end": 16.0},
        {"phase": "tests", "start": 16.0, "end": 50.0},
        {"phase": "teardown", "start": 50.0, "end": 52.0},
    ]
    assert timeline.svg(items).count("<rect ") == 5

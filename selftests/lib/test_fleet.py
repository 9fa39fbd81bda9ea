"""`signcheck fleet` without any cluster: the clusters named on the command line, the fleet
report from hand-written summaries (a healthy cluster, a failing one, one stopped in its
preflight, one that wrote nothing), secrets kept out, and the command's exit code. The fleet
against real local environments is `selftests/localenv/test_fleet_envs.py`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from signcheck import cli, redact
from signcheck.cli import children
from signcheck.cli import fleet as cli_fleet
from signcheck.report import fleet
from signcheck.report.compare import RunResult

SECRET = "planted-fleet-secret-7"
KUBECONFIG = """apiVersion: v1
kind: Config
contexts:
- {name: prod, context: {cluster: a, user: u}}
- {name: staging, context: {cluster: b, user: u}}
current-context: prod
"""


def _summary(
    directory: Path, tests: list[dict[str, Any]], verdict: dict[str, Any], **extra: Any
) -> Path:
    directory.mkdir(parents=True)
    summary = {
        "schema": "signcheck.summary/v2",
        "run_id": f"run-{directory.name}",
        "versions": {"kubernetes": "v1.35.4", "kyverno": "v1.19.1"},
        "tests": tests,
        "verdict": verdict,
        **extra,
    }
    (directory / "summary.json").write_text(json.dumps(summary))
    (directory / "report.html").write_text("<html></html>")
    return directory


def _t(nodeid: str, outcome: str, scenario: str, message: str = "") -> dict[str, Any]:
    return {"nodeid": nodeid, "outcome": outcome, "scenario": scenario, "message": message}


FINDING = {
    "id": "POSTURE-WEBHOOK-IGNORE",
    "title": "Kyverno's webhook fails open",
    "severity": "high",
    "remediation": "set failurePolicy: Fail",
    "affected": True,
    "nodeid": None,
}


@pytest.fixture
def four(tmp_path: Path) -> list[RunResult]:
    redact.register(SECRET)
    base = tmp_path / "fleet"
    good = _summary(
        base / "prod",
        [_t("t::seed1", "pass", "SEED-01"), _t("t::seed2", "pass", "SEED-02")],
        {"state": "enforced", "sentence": "enforced", "exit_code": 0},
    )
    bad = _summary(
        base / "staging",
        [_t("t::seed1", "pass", "SEED-01"), _t("t::seed2", "fail", "SEED-02", f"x {SECRET}")],
        {"state": "not enforced", "sentence": "not enforced: 1 scenario failed", "exit_code": 1},
        findings=[FINDING],
    )
    stopped = _summary(
        base / "edge",
        [],
        {
            "state": "undetermined",
            "sentence": "undetermined: 0 scenarios could not be judged",
            "cause": "Kyverno is not installed in namespace kyverno: install it",
            "exit_code": 6,
        },
    )
    return [
        RunResult("prod", good, 0),
        RunResult("staging", bad, 1),
        RunResult("edge", stopped, 6),
        RunResult("gone", base / "gone", 4, f"exited 4 without a summary.json; token {SECRET}"),
    ]


def test_verdict_and_what_is_wrong_per_cluster(tmp_path: Path, four: list[RunResult]) -> None:
    f = fleet.build(four, {"prod": "context prod of k"}, tmp_path)
    assert f["schema"] == fleet.SCHEMA and f["clusters"] == ["prod", "staging", "edge", "gone"]
    assert f["healthy"] == ["prod"] and f["unhealthy"] == ["staging", "edge", "gone"]
    runs = {r["cluster"]: r for r in f["runs"]}
    assert runs["prod"]["problem"] is None and runs["prod"]["source"] == "context prod of k"
    # Each unhealthy cluster in the run's own words: failures by scenario, the named cause,
    # the error of a run that wrote nothing.
    assert runs["staging"]["problem"] == "not enforced: 1 scenario failed (SEED-02)"
    assert runs["edge"]["problem"] == "Kyverno is not installed in namespace kyverno: install it"
    assert runs["gone"]["problem"].startswith("exited 4 without a summary.json")
    assert runs["staging"]["findings"][0]["severity"] == "high"
    assert runs["prod"]["kubernetes"] == "v1.35.4"


def test_differences_only_between_clusters_that_judged(
    tmp_path: Path, four: list[RunResult]
) -> None:
    f = fleet.build(four, {}, tmp_path)
    # edge (stopped before its first test) and gone (no summary) make no row differ.
    assert f["differences"] == 1
    row = next(r for r in f["rows"] if r["differs"])
    assert row["scenario"] == "SEED-02" and row["cells"]["edge"] == {"outcome": "absent"}
    assert f["finding_differences"] == [
        {
            "id": "POSTURE-WEBHOOK-IGNORE",
            "severity": "high",
            "title": "Kyverno's webhook fails open",
            "clusters": ["staging"],
            "missing_on": ["prod"],
        }
    ]


def test_page_and_json_without_secrets(tmp_path: Path, four: list[RunResult]) -> None:
    json_path, html_path = fleet.write(fleet.build(four, {}, tmp_path), tmp_path)
    page = html_path.read_text()
    assert "1 of 4 clusters admit only signed images" in page
    assert "Kyverno is not installed in namespace kyverno" in page
    assert "set failurePolicy: Fail" in page and 'href="fleet/prod/report.html"' in page
    for text in (page, json_path.read_text()):
        assert SECRET not in text and "[REDACTED]" in text
    lines = fleet.terminal_lines(json.loads(json_path.read_text()))
    assert lines[0] == "ok  prod: enforced"
    assert lines[-1].startswith("1 of 4 clusters healthy; 1 scenario differs")


def test_members_from_contexts_kubeconfigs_and_profiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kc = tmp_path / "fleet.yaml"
    kc.write_text(KUBECONFIG)
    found = cli_fleet.members([str(kc)], "prod, staging", [])
    assert [m.name for m in found] == ["prod", "staging"]
    assert found[1].args == ("--target", "cluster", "--kubeconfig", str(kc), "--context", "staging")
    # An `env up` kubeconfig is named after its run; a generic file name after its directory;
    # the same name twice gets a suffix; NAME= names it.
    env_kc = tmp_path / "20261207-1-abc" / "kubeconfigs" / "admin.yaml"
    env_kc.parent.mkdir(parents=True)
    env_kc.write_text(KUBECONFIG)
    profile = tmp_path / "east" / "profile.toml"
    profile.parent.mkdir()
    profile.write_text('target = "cluster"\n')
    found = cli_fleet.members([str(env_kc), str(env_kc), f"lab one={kc}"], None, [str(profile)])
    assert [m.name for m in found] == ["20261207-1-abc", "20261207-1-abc-2", "lab-one", "east"]
    assert found[3].args == ("--profile", str(profile))
    monkeypatch.setenv("KUBECONFIG", str(kc))
    assert [m.name for m in cli_fleet.members([], "prod", [])] == ["prod"]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["fleet"], "name the clusters"),
        (["fleet", "--contexts", "prod,nope"], "nope not in"),
        (["fleet", "--kubeconfig", "/nonexistent/kc"], "--kubeconfig /nonexistent/kc does not"),
        (["fleet", "--profile", "/nonexistent/p.toml"], "--profile /nonexistent/p.toml does not"),
        (["fleet", "--contexts", "prod", "--", "--context=x"], "--context is set by signcheck"),
        (["fleet", "--contexts", "prod", "--jobs", "0"], "at least one run"),
    ],
)
def test_bad_input_one_clear_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    says: str,
) -> None:
    kc = tmp_path / "kc.yaml"
    kc.write_text(KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(kc))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_command_runs_each_cluster_and_exits_on_health(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    four: list[RunResult],
) -> None:
    (tmp_path / "tests").mkdir()
    kc = tmp_path / "kc.yaml"
    kc.write_text(KUBECONFIG)
    monkeypatch.chdir(tmp_path)
    seen: dict[str, Any] = {}

    def fake_run_all(planned: list[children.Planned], jobs: int, prog: str) -> list[RunResult]:
        seen.update(planned=planned, jobs=jobs)
        return four

    monkeypatch.setattr(children, "run_all", fake_run_all)
    argv = ["fleet", "--kubeconfig", str(kc), "--contexts", "prod,staging", "--reports", "."]
    assert cli.main([*argv, "--", "-k", "SEED"]) == 1
    assert seen["jobs"] == 2
    plan = seen["planned"][1]
    assert plan.label == "staging" and plan.reports_dir == Path("fleet/staging")
    assert plan.args[-4:] == ("--signcheck-reports", "fleet/staging", "-k", "SEED")
    out = capsys.readouterr().out
    assert (
        "BAD edge: undetermined (exit 6)" in out
        and "what is wrong: Kyverno is not installed" in out
    )
    assert (tmp_path / "fleet.html").is_file() and SECRET not in out

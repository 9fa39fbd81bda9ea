"""The flake counter's arithmetic (benchmarks.flakes), on made-up run results."""

from __future__ import annotations

from typing import Any

from benchmarks.flakes import tally


def _run(i: int, exit_code: int = 0, problems: list[str] | None = None, **tests: str) -> Any:
    return {"run": i, "exit": exit_code, "tests": tests, "problems": problems or []}


def test_steady_outcomes_are_not_flakes() -> None:
    runs = [_run(i, a="pass", b="skipped", c="finding") for i in range(3)]
    result = tally(runs)
    assert result["flaky_tests"] == [] and result["failing_tests"] == []


def test_a_test_that_sometimes_fails_is_a_flake() -> None:
    runs = [_run(1, a="pass"), _run(2, 1, a="fail"), _run(3, a="pass")]
    result = tally(runs)
    assert result["flaky_tests"] == ["a"]
    assert result["per_test"]["a"]["outcomes"] == {"pass": 2, "fail": 1}
    assert result["runs_failed"] == [2]


def test_a_test_missing_from_some_runs_is_a_flake_and_never_passing_is_failing() -> None:
    runs = [_run(1, 1, a="pass", b="fail"), _run(2, 1, b="environment")]
    result = tally(runs)
    assert result["flaky_tests"] == ["a", "b"]
    assert result["failing_tests"] == ["b"]


def test_runs_that_left_something_are_counted() -> None:
    result = tally([_run(1, a="pass"), _run(2, problems=["left behind: x"], a="pass")])
    assert result["runs_with_problems"] == [2]

"""Where the run's time went: the phases' wall-clock stretches (from the run's `phases.json`)
as `summary.json`'s `timeline`, and the report's chart of them as inline SVG (no script, font
or image from elsewhere, so the page stays self-contained)."""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path
from typing import Any

ENCLOSING = "tests"
"""The phase whose interval is the window from the first test's start to the last one's end.
The first test's setup also ran the session setup (images, signing, policy: once per run, all
of it before any test body), which has lanes of its own: `tests` starts where the last phase
that began inside its window ended, so the chart does not show tests running beside them."""

_COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1")


def from_intervals(intervals: list[list[Any]], origin: float) -> list[dict[str, Any]]:
    """`[phase, start, end]` wall-clock intervals as items `{phase, start, end}` in seconds
    since `origin` (the run's start), sorted by start. A phase's overlapping intervals (the
    signing thread pool's) merge into one stretch: the chart shows when a phase was busy,
    not how many threads it kept busy."""
    by_phase: dict[str, list[tuple[float, float]]] = {}
    for phase, start, end in intervals:
        by_phase.setdefault(str(phase), []).append((float(start), float(end)))
    merged = {phase: _union(spans) for phase, spans in by_phase.items()}
    if ENCLOSING in merged:
        window = merged[ENCLOSING]
        inside = [
            e
            for p, spans in merged.items()
            if p != ENCLOSING
            for s, e in spans
            if any(ws <= s < we for ws, we in window)
        ]
        cut = max(inside, default=float("-inf"))
        merged[ENCLOSING] = [(max(s, cut), e) for s, e in window if e > cut]
    items = [
        {"phase": phase, "start": round(s - origin, 3), "end": round(e - origin, 3)}
        for phase, spans in merged.items()
        for s, e in spans
    ]
    return sorted(items, key=lambda i: (i["start"], i["phase"]))


def read(phases_json: Path, origin: float) -> list[dict[str, Any]]:
    """The timeline of a run from its `phases.json` (none if the run recorded no phase)."""
    if not phases_json.is_file():
        return []
    data = json.loads(phases_json.read_text())
    return from_intervals(data.get("intervals") or [], origin)


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _step(total: float) -> float:
    """A round tick spacing giving at most about ten ticks."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600):
        if total / step <= 10:
            return step
    return 3600 * math.ceil(total / 36000)


def svg(items: list[dict[str, Any]], wall_seconds: float = 0.0, width: int = 960) -> str:
    """The timeline as an SVG Gantt chart: one lane per phase (in the order phases started),
    each stretch a bar with its times as a tooltip, the phase's busy seconds at the lane's end."""
    if not items:
        return ""
    lanes: list[str] = []
    for item in items:
        if item["phase"] not in lanes:
            lanes.append(item["phase"])
    total = max([wall_seconds, *(float(i["end"]) for i in items)]) or 1.0
    left, right, top, lane_h = 130, 70, 26, 24
    plot = width - left - right
    height = top + lane_h * len(lanes) + 8

    def x(t: float) -> float:
        return round(left + plot * max(0.0, t) / total, 1)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sc-timeline" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="timeline of the run\'s phases" font-family="Helvetica, Arial, sans-serif" '
        'font-size="12">'
    ]
    step = _step(total)
    tick = 0.0
    while tick <= total + 1e-9:
        out.append(
            f'<line x1="{x(tick)}" y1="{top - 6}" x2="{x(tick)}" y2="{height - 8}" '
            'stroke="#ddd"/>'
            f'<text x="{x(tick)}" y="{top - 10}" text-anchor="middle" fill="#555">'
            f"{tick:g} s</text>"
        )
        tick += step
    for n, lane in enumerate(lanes):
        y = top + n * lane_h
        colour = _COLOURS[n % len(_COLOURS)]
        spans = [i for i in items if i["phase"] == lane]
        busy = sum(float(i["end"]) - float(i["start"]) for i in spans)
        out.append(
            f'<text x="{left - 8}" y="{y + 16}" text-anchor="end" fill="#222">{escape(lane)}</text>'
        )
        for i in spans:
            start, end = float(i["start"]), float(i["end"])
            w = max(1.0, x(end) - x(start))
            out.append(
                f'<rect x="{x(start)}" y="{y + 4}" width="{w:.1f}" height="{lane_h - 8}" '
                f'rx="2" fill="{colour}"><title>{escape(lane)}: {start:.1f} s to {end:.1f} s '
                f"({end - start:.1f} s)</title></rect>"
            )
        out.append(f'<text x="{width - right + 6}" y="{y + 16}" fill="#222">{busy:.1f} s</text>')
    out.append("</svg>")
    return "".join(out)

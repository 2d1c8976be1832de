"""Server-rendered SVG charts: bars or a line, with axis labels, a <title>, a <desc> and a data table.

Pure functions of their input (no database): the Statistics tab hands in (day, value) pairs.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 48


@dataclass(frozen=True)
class Chart:
    svg: SafeString
    summary: str  # one sentence a screen reader (or a person skimming) can use instead
    # The y axis alone (its labels and title on an opaque strip as tall as the plot, LEFT units wide; below
    # it the dates and the x axis's title show through, the svg being the chart's height): shown
    # over the left edge of a chart that scrolls sideways on a phone, so the values stay readable at any
    # scroll position (templates/repositories/stats.html, .chart-y-axis in wharf.css). Hidden from
    # screen readers: the chart itself carries the same labels.
    axis: SafeString


def nice_ceiling(value: float) -> int:
    """The next "round" number at or above `value` (1, 2, 5 × 10ⁿ), at least 1."""
    if value <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return math.ceil(step * magnitude)
    return int(10 * magnitude)  # pragma: no cover


def tick_steps(top: int) -> int:
    """How many intervals to split 0…top into so every tick is a whole number (top is "nice")."""
    for steps in (4, 5, 2):
        if top % steps == 0:
            return steps
    return 1


def _format(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}".removesuffix(".0") + "M"
    if value >= 1_000:
        return f"{value / 1_000:.1f}".removesuffix(".0") + "K"
    return str(int(value))


def _x_label_indexes(count: int, wanted: int = 6) -> list[int]:
    if count <= 1:
        return [0] if count else []
    step = max(1, round((count - 1) / (wanted - 1)))
    indexes = list(range(0, count, step))
    if count - 1 - indexes[-1] < step / 2:
        indexes[-1] = count - 1
    else:
        indexes.append(count - 1)
    return indexes


def time_chart(points: list[tuple[dt.date, int]], *, title: str, y_label: str, kind: str = "bar",
               chart_id: str = "chart") -> Chart:
    """A chart of daily values; `kind` is "bar" (pulls per day) or "line" (a running total)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    values = [value for _, value in points]
    top = nice_ceiling(max(values, default=0))
    total, peak = sum(values), max(values, default=0)
    if points:
        first, last = points[0][0], points[-1][0]
        if kind == "line":
            summary = (f"{title}: from {values[0]:,} on {first:%b %-d, %Y} to {values[-1]:,} on {last:%b %-d, %Y}.")
        else:
            peak_day = points[values.index(peak)][0]
            summary = (f"{title} from {first:%b %-d, %Y} to {last:%b %-d, %Y}: {total:,} in total, "
                       f"at most {peak:,} on {peak_day:%b %-d, %Y}.")
    else:
        summary = f"{title}: no data."
    title_id, desc_id = f"{chart_id}-title", f"{chart_id}-desc"
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{title_id} {desc_id}" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{title_id}">{escape(title)}</title>',
        f'<desc id="{desc_id}">{escape(summary)}</desc>',
    ]
    # y axis: gridlines and labels at whole-number steps from 0 to the top.
    steps = tick_steps(top)
    y_labels = []
    for i in range(steps + 1):
        value = top * i / steps
        y = TOP + plot_h - plot_h * i / steps
        parts.append(f'<line class="chart-grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        y_labels.append(f'<text class="chart-label" x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">'
                        f'{_format(value)}</text>')
    y_labels.append(f'<text class="chart-axis-title" transform="translate(14 {TOP + plot_h / 2:.0f}) rotate(-90)" '
                    f'text-anchor="middle">{escape(y_label)}</text>')
    parts.extend(y_labels)
    count = len(points)
    slot = plot_w / max(count, 1)
    if kind == "bar":
        bar_w = max(slot * 0.7, 1)
        for index, (day, value) in enumerate(points):
            height = plot_h * value / top
            x = LEFT + index * slot + (slot - bar_w) / 2
            parts.append(f'<rect class="chart-bar" x="{x:.1f}" y="{TOP + plot_h - height:.1f}" width="{bar_w:.1f}" '
                         f'height="{height:.1f}"><title>{day:%b %-d, %Y}: {value:,}</title></rect>')
    elif points:
        coords = [(LEFT + index * slot + slot / 2, TOP + plot_h - plot_h * value / top)
                  for index, (_, value) in enumerate(points)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(f'<polyline class="chart-line" fill="none" points="{path}"/>')
    parts.append(f'<line class="chart-axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" '
                 f'y2="{TOP + plot_h}"/>')
    for index in _x_label_indexes(count):
        day = points[index][0]
        x = LEFT + index * slot + slot / 2
        parts.append(f'<text class="chart-label" x="{x:.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">'
                     f'{day:%b %-d}</text>')
    parts.append(f'<text class="chart-axis-title" x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 6}" '
                 f'text-anchor="middle">Date (UTC)</text>')
    parts.append("</svg>")
    axis = (f'<svg class="chart-y-axis-svg" viewBox="0 0 {LEFT} {HEIGHT}" aria-hidden="true" focusable="false" '
            f'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
            f'<rect class="chart-y-axis-bg" x="0" y="0" width="{LEFT}" height="{TOP + plot_h + 6}"/>'
            f'<line class="chart-axis" x1="{LEFT - 0.5}" x2="{LEFT - 0.5}" y1="{TOP}" y2="{TOP + plot_h}"/>'
            f'{"".join(y_labels)}</svg>')
    return Chart(svg=mark_safe("".join(parts)), summary=summary,  # noqa: S308 - every text is escaped above
                 axis=mark_safe(axis))  # noqa: S308 - the same escaped labels

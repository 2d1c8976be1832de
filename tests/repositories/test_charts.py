"""Server-rendered SVG charts: axis labels, <title>, <desc>, and values escaped."""

import datetime as dt
import re

from repositories.charts import nice_ceiling, tick_steps, time_chart

START = dt.date(2025, 3, 1)


def points(values):
    return [(START + dt.timedelta(days=i), value) for i, value in enumerate(values)]


def test_bar_chart_has_title_desc_and_axis_labels():
    chart = time_chart(points([0, 3, 10, 1]), title="Pulls per day", y_label="Pulls", chart_id="c1")
    svg = str(chart.svg)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert 'role="img"' in svg and 'aria-labelledby="c1-title c1-desc"' in svg
    assert '<title id="c1-title">Pulls per day</title>' in svg
    assert f'<desc id="c1-desc">{chart.summary}</desc>' in svg
    assert ">Pulls</text>" in svg and ">Date (UTC)</text>" in svg  # axis titles
    assert ">0</text>" in svg and ">10</text>" in svg  # y tick labels
    assert ">Mar 1</text>" in svg and ">Mar 4</text>" in svg  # x tick labels
    assert svg.count('class="chart-bar"') == 4
    assert "14 in total" in chart.summary and "at most 10 on Mar 3, 2025" in chart.summary


def test_bars_have_per_day_tooltips():
    svg = str(time_chart(points([5]), title="t", y_label="y").svg)
    assert "<title>Mar 1, 2025: 5</title>" in svg


def test_line_chart():
    chart = time_chart(points([1, 2, 2, 4]), title="Stars", y_label="Stars", kind="line")
    assert "<polyline" in str(chart.svg)
    assert "from 1 on Mar 1, 2025 to 4 on Mar 4, 2025" in chart.summary


def test_empty_chart_still_has_axes():
    chart = time_chart([], title="Nothing", y_label="Pulls")
    assert "no data" in chart.summary
    assert ">Pulls</text>" in str(chart.svg)


def test_text_is_escaped():
    svg = str(time_chart(points([1]), title="<script>x</script>", y_label="a&b").svg)
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a&amp;b" in svg


def test_bars_stay_inside_the_plot():
    svg = str(time_chart(points([0, 1_234_567]), title="big", y_label="Pulls").svg)
    heights = [float(h) for h in re.findall(r'class="chart-bar"[^>]*height="([\d.]+)"', svg)]
    assert max(heights) <= 260
    assert ">2M</text>" in svg or ">1.5M</text>" in svg or ">2.5M</text>" in svg


def test_y_ticks_are_whole_numbers():
    svg = str(time_chart(points([0, 1]), title="t", y_label="y").svg)
    labels = re.findall(r'text-anchor="end">([^<]+)</text>', svg)
    assert labels == ["0", "1"]
    assert [tick_steps(top) for top in (1, 2, 5, 10, 20, 25, 100, 250)] == [1, 2, 5, 5, 4, 5, 4, 5]


def test_nice_ceiling():
    assert [nice_ceiling(v) for v in (0, 1, 3, 7, 11, 240, 999)] == [1, 1, 5, 10, 20, 250, 1000]


def test_the_y_axis_comes_alone_too_for_a_chart_that_scrolls():
    chart = time_chart(points([0, 3, 10, 1]), title="Pulls per day", y_label="Pulls", chart_id="c1")
    axis = str(chart.axis)
    assert axis.startswith('<svg class="chart-y-axis-svg" viewBox="0 0 56 260" aria-hidden="true"')
    assert axis.endswith("</svg>")
    y_labels = r'<text class="chart-label" x="48" y="([\d.]+)"[^>]*>([^<]*)</text>'
    assert re.findall(y_labels, axis) == re.findall(y_labels, str(chart.svg))  # the same ticks, same places
    assert [label for _, label in re.findall(y_labels, axis)] == ["0", "2", "4", "6", "8", "10"]
    assert ">Pulls</text>" in axis and "chart-bar" not in axis and "Date (UTC)" not in axis
    assert 'class="chart-y-axis-bg"' in axis  # opaque: the bars scrolled under it do not show through

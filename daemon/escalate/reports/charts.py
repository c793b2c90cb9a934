"""The HTML report's charts as inline SVG: bars with a value axis and its scale, and the trend's
columns of two periods side by side. No script and nothing from the network.

Scales: counts on a linear axis from zero; shares from 0 to 100%; durations from zero too while
they are of one order, and on a logarithmic axis when they are far apart, so a 30-minute median
and an 18-hour p90 are both readable in one chart (on a linear axis the median would be a sliver).
Rows and columns without a value draw no bar: a chart shows only what happened,
and an empty chart is replaced by a sentence (the page's job).
"""

from __future__ import annotations

import math
from html import escape
from typing import Callable, NamedTuple, Sequence

from escalate.reports.views import duration

WIDTH = 520
BAR = 18
GAP = 10
LABEL = 170  # room for the category names left of the bars
AXIS = 26  # room for the value axis under the bars
FONT = 'font-size="11"'


class Series(NamedTuple):
    name: str  # in the legend
    colour: str
    values: Sequence[float | None]  # one per label
    texts: Sequence[str] | None = None  # written at each bar's end (default: the value, formatted)


# -- scales ----------------------------------------------------------------------------------------

class Linear:
    """0 to a round top mapped onto `pixels`: counts, shares (up to 100%) or durations (in steps a
    person thinks in: 15m, 1h, 4h...)."""

    def __init__(self, top: float, pixels: float, kind: str = "count"):
        top = top or 1
        steps = {"share": SHARE_STEPS, "duration": DURATION_STEPS}.get(kind)
        if steps is None:  # counts: whole steps of 1, 2 or 5 times a power of ten
            magnitude = 10 ** math.floor(math.log10(top))
            steps = [s for s in (m * magnitude * f for f in (0.1, 1, 10) for m in (1, 2, 5)) if s >= 1]
        self.step = next((s for s in steps if top / s <= 5), steps[-1])
        self.top = math.ceil(top / self.step - 1e-9) * self.step
        if kind == "share":
            self.top = min(1.0, self.top)
        self.pixels, self.kind = pixels, kind

    def at(self, value: float) -> float:
        return self.pixels * min(value, self.top) / self.top

    def ticks(self) -> list[tuple[float, str]]:
        return [(i * self.step, self._text(i * self.step)) for i in range(round(self.top / self.step) + 1)]

    def _text(self, value: float) -> str:
        if self.kind == "share":
            return f"{value * 100:.0f}%"
        if self.kind == "duration":
            return duration(value) if value else "0"
        return f"{value:g}"


SHARE_STEPS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5]
# steps of a linear time axis, in seconds: 1s, 5s ... 15m, 30m, 1h, 2h ... 1w
DURATION_STEPS = [1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 7200, 4 * 3600, 6 * 3600, 12 * 3600, 86400,
                  2 * 86400, 7 * 86400, 30 * 86400]
WIDE_RANGE = 10  # durations whose largest is more than this many times the smallest go on a log axis


def scale_for(kind: str, values: Sequence[float], pixels: float):
    """The axis for `values`: "count", "share", or "duration" — linear while the durations are
    of one order (17m beside 57m reads best from zero), logarithmic when they are far apart (a 30m
    median beside an 18h p90: on a linear axis the 30m would be a sliver)."""
    if kind == "duration":
        positive = [v for v in values if v and v > 0]
        if positive and max(positive) > WIDE_RANGE * min(positive):
            return Log(positive, pixels)
    return Linear(max(values, default=0), pixels, kind)


# durations a person thinks in, for the logarithmic axis
DURATION_TICKS = [(1, "1s"), (10, "10s"), (60, "1m"), (300, "5m"), (900, "15m"), (3600, "1h"), (4 * 3600, "4h"),
                  (12 * 3600, "12h"), (86400, "1d"), (3 * 86400, "3d"), (7 * 86400, "1w"), (30 * 86400, "30d"),
                  (365 * 86400, "1y")]


class Log:
    """Durations on a logarithmic axis from the tick below the smallest value to the tick at or
    above the largest: equal ratios are equal distances."""

    def __init__(self, values: Sequence[float], pixels: float):
        positive = [v for v in values if v and v > 0] or [60.0]
        low, high = min(positive), max(positive)
        # strictly below the smallest value, so its bar has a length too
        below = [t for t in DURATION_TICKS if t[0] < low] or DURATION_TICKS[:1]
        above = [t for t in DURATION_TICKS if t[0] >= high] or DURATION_TICKS[-1:]
        self.low, self.high = below[-1][0], above[0][0]
        if self.high <= self.low:
            self.high = next((t for t, _ in DURATION_TICKS if t > self.low), self.low * 10)
        self.pixels = pixels
        self._ticks = [t for t in DURATION_TICKS if self.low <= t[0] <= self.high]
        while len(self._ticks) > 6:  # keep the labels apart: every other tick, ends kept
            self._ticks = self._ticks[::2] + ([self._ticks[-1]] if len(self._ticks) % 2 == 0 else [])

    def at(self, value: float) -> float:
        if value <= self.low:
            return 0.0
        return self.pixels * math.log(min(value, self.high) / self.low) / math.log(self.high / self.low)

    def ticks(self) -> list[tuple[float, str]]:
        return self._ticks


# -- SVG -------------------------------------------------------------------------------------------

def svg(chart_id: str, title: str, width: int, height: int, body: list[str]) -> str:
    """An SVG that scales down with its card (printed two to a row) and keeps its proportions."""
    return (f'<svg id="{chart_id}" role="img" aria-labelledby="{chart_id}-title" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" shape-rendering="crispEdges">'
            f'<title id="{chart_id}-title">{escape(title)}</title>' + "".join(body) + "</svg>")


def _legend(series: Sequence[Series], x: float, y: float, spacing: float = 150) -> list[str]:
    return [f'<rect x="{x + i * spacing:.0f}" y="{y}" width="10" height="10" fill="{s.colour}"/>'
            f'<text x="{x + i * spacing + 15:.0f}" y="{y + 9}" font-size="12">{escape(s.name)}</text>'
            for i, s in enumerate(series)]


def _value_axis(scale, x0: float, y: float, top: float) -> list[str]:
    """Gridlines from `top` down to the axis line at `y`, each tick labelled under it."""
    body = [f'<line x1="{x0}" y1="{y}" x2="{x0 + scale.pixels:.0f}" y2="{y}" stroke="#444"/>']
    for value, text in scale.ticks():
        x = x0 + scale.at(value)
        body.append(f'<line x1="{x:.0f}" y1="{top}" x2="{x:.0f}" y2="{y + 4}" stroke="#cbd5e0"/>'
                    f'<text x="{x:.0f}" y="{y + 16}" {FONT} text-anchor="middle">{escape(text)}</text>')
    return body


def hbar_chart(chart_id: str, title: str, labels: Sequence[str], series: Sequence[Series],
               fmt: Callable[[float], str] = lambda v: f"{v:g}", scale: str = "count",
               ranged: bool = False) -> str | None:
    """Horizontal bars, one group per label, on a value axis (scale_for: "count", "share" or
    "duration"). `ranged`: two series drawn as a range on one line — the first from the axis
    to its value (the median), the second on from there to its own (the p90). Labels whose values
    are all empty are left out; None when none is left."""
    keep = [i for i in range(len(labels)) if any(s.values[i] for s in series)]
    if not keep:
        return None
    plot = WIDTH - LABEL - 90
    lines = 1 if ranged else len(series)
    group = lines * BAR + GAP
    legend = 22 if len(series) > 1 else 0
    axis = scale_for(scale, [s.values[i] or 0 for s in series for i in keep], plot)
    height = legend + len(keep) * group + AXIS
    base = height - AXIS + 4
    body = _legend(series, LABEL, 5) if legend else []
    body += _value_axis(axis, LABEL, base, legend)
    for row, index in enumerate(keep):
        y0 = legend + row * group + GAP / 2
        body.append(f'<text x="{LABEL - 8}" y="{y0 + lines * BAR / 2 + 4}" font-size="12" text-anchor="end">'
                    f'{escape(labels[index])}</text>')
        start = 0.0
        for i, s in enumerate(series):
            value = s.values[index]
            if not value:
                continue
            y = y0 + (0 if ranged else i * BAR)
            left = start if ranged else 0.0
            end = max(left + 1, axis.at(value))
            if ranged and i and axis.at(value) <= left:  # a p90 equal to the median: no range to draw
                end = left
            else:
                body.append(f'<rect x="{LABEL + left:.0f}" y="{y + 2}" width="{end - left:.0f}" height="{BAR - 4}" '
                            f'fill="{s.colour}"/>')
            if ranged:
                start = end
            if not ranged or i == len(series) - 1:
                text = s.texts[index] if s.texts else fmt(value)
                if ranged:  # "10m – 30m"; one value when both ends are the same
                    text = " – ".join(dict.fromkeys(fmt(x.values[index]) for x in series if x.values[index]))
                body.append(f'<text x="{LABEL + end + 5:.0f}" y="{y + BAR - 5}" {FONT}>{escape(text)}</text>')
    body.append(f'<line x1="{LABEL}" y1="{legend}" x2="{LABEL}" y2="{base}" stroke="#444"/>')
    return svg(chart_id, title, WIDTH, height, body)


def vbar_chart(chart_id: str, title: str, labels: Sequence[str], values: Sequence[float], colour: str,
               axis: str) -> str:
    """Vertical bars (a histogram: every bin stays, empty ones too), the count above each bar."""
    height, base, left = 220, 180, 40
    top = max(values, default=0) or 1
    slot = (WIDTH - left - 10) / max(1, len(labels))
    body = [f'<line x1="{left}" y1="{base}" x2="{WIDTH - 10}" y2="{base}" stroke="#444"/>']
    for i, (label, value) in enumerate(zip(labels, values)):
        x = left + i * slot + slot * 0.15
        h = round((base - 20) * value / top) if value else 0
        if h:
            body.append(f'<rect x="{x:.0f}" y="{base - h}" width="{slot * 0.7:.0f}" height="{h}" fill="{colour}"/>')
        body.append(f'<text x="{x + slot * 0.35:.0f}" y="{base - h - 4}" {FONT} text-anchor="middle">{value:g}</text>'
                    f'<text x="{x + slot * 0.35:.0f}" y="{base + 15}" font-size="12" text-anchor="middle">{escape(label)}</text>')
    body.append(f'<text x="{WIDTH / 2:.0f}" y="{height - 4}" font-size="12" text-anchor="middle">{escape(axis)}</text>')
    return svg(chart_id, title, WIDTH, height, body)


# -- the trend -------------------------------------------------------------------------------------

class Panel(NamedTuple):
    title: str
    current: Sequence[float | None]  # one per bucket
    previous: Sequence[float | None]
    scale: str  # "count", "share" or "duration" (scale_for)


TREND_WIDTH, PANEL_HEIGHT = 1060, 190


def trend_chart(chart_id: str, title: str, buckets: Sequence[str], panels: Sequence[Panel],
                colours: tuple[str, str], legend: tuple[str, str]) -> str:
    """Panels side by side, each a column pair per bucket: this period's (dark) and the same stretch
    one period earlier (light), on the panel's own value axis (ticks on the left)."""
    width = TREND_WIDTH / len(panels)
    top, left, bottom = 44, 48, 34
    plot_h = PANEL_HEIGHT - top - bottom
    height = PANEL_HEIGHT
    body = _legend([Series(legend[0], colours[0], ()), Series(legend[1], colours[1], ())], left, 4, spacing=330)
    for p, panel in enumerate(panels):
        x0, plot_w = p * width + left, width - left - 14
        # as many bucket labels as fit side by side (about 7 px a character, with a gap)
        every = max(1, math.ceil(len(buckets) * (7 * max(map(len, buckets), default=1) + 8) / plot_w))
        axis = scale_for(panel.scale, [v or 0 for v in (*panel.current, *panel.previous)], plot_h)
        base = top + plot_h
        body.append(f'<text x="{x0}" y="{top - 10}" font-size="12" font-weight="600">{escape(panel.title)}</text>')
        for value, text in axis.ticks():
            y = base - axis.at(value)
            body.append(f'<line x1="{x0 - 4}" y1="{y:.0f}" x2="{x0 + plot_w:.0f}" y2="{y:.0f}" stroke="#e2e8f0"/>'
                        f'<text x="{x0 - 6}" y="{y + 4:.0f}" font-size="10" text-anchor="end">{escape(text)}</text>')
        body.append(f'<line x1="{x0}" y1="{base}" x2="{x0 + plot_w:.0f}" y2="{base}" stroke="#444"/>'
                    f'<line x1="{x0}" y1="{top}" x2="{x0}" y2="{base}" stroke="#444"/>')
        slot = plot_w / max(1, len(buckets))
        bar = max(1.0, slot * 0.36)
        for i, name in enumerate(buckets):
            x = x0 + i * slot + slot * 0.12
            for value, colour, dx in ((panel.current[i], colours[0], 0), (panel.previous[i], colours[1], bar)):
                if value:
                    h = max(1, round(axis.at(value)))
                    body.append(f'<rect x="{x + dx:.1f}" y="{base - h}" width="{bar:.1f}" height="{h}" fill="{colour}"/>')
            if i % every == 0:
                body.append(f'<text x="{x + bar:.0f}" y="{base + 14}" font-size="10" text-anchor="middle">'
                            f'{escape(name)}</text>')
    return svg(chart_id, title, TREND_WIDTH, height, body)

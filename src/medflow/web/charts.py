"""Line charts as inline SVG, drawn on the server: no script, no assets fetched at run time.

Each chart carries a <title> and a <desc> (read by screen readers through aria-labelledby) and
the page shows the same numbers in a table beside it, as the text alternative.
"""

from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from itertools import count
from math import ceil, floor, log10

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 30, 52  # TOP leaves room for the unit above the axis
# Colours with at least 3:1 contrast on white (WCAG non-text contrast); series also differ in
# marker shape so that colour is never the only cue.
COLOURS = ("#1f5fa8", "#b3261e", "#2e7d32", "#6a3fa0")
MARKERS = ("circle", "square", "diamond", "triangle")
_ids = count(1)


@dataclass
class Series:
    """One line: its label and its (time, value) points in time order."""

    label: str
    points: list[tuple[datetime, float]]


@dataclass
class Chart:
    title: str
    unit: str
    series: list[Series]
    band: tuple[float | None, float | None] | None = None
    band_label: str = "reference range"
    extra: list[str] = field(default_factory=list)


def _fmt(value: float) -> str:
    return f"{value:g}"


def _ticks(low: float, high: float, n: int = 5) -> list[float]:
    """Return about n+1 round values (steps of 1, 2, 2.5 or 5 times a power of ten) in the range."""
    if high <= low:
        return [low]
    raw = (high - low) / n
    magnitude = 10 ** floor(log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = ceil(low / step)
    ticks = []
    while (first + len(ticks)) * step <= high + step * 1e-9:
        ticks.append(round((first + len(ticks)) * step, 10))
    return ticks


def _outside(value: float, band: tuple[float | None, float | None] | None) -> str:
    """Return "above" or "below" when a value is outside the reference range, else ""."""
    if band is None:
        return ""
    low, high = band
    if high is not None and value > high:
        return "above"
    if low is not None and value < low:
        return "below"
    return ""


def _marker(kind: str, x: float, y: float, colour: str, label: str) -> str:
    tip = f"<title>{escape(label)}</title>"
    if kind == "square":
        return (f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{colour}">'
                f"{tip}</rect>")
    if kind == "diamond":
        pts = f"{x:.1f},{y - 5:.1f} {x + 5:.1f},{y:.1f} {x:.1f},{y + 5:.1f} {x - 5:.1f},{y:.1f}"
        return f'<polygon points="{pts}" fill="{colour}">{tip}</polygon>'
    if kind == "triangle":
        pts = f"{x:.1f},{y - 5:.1f} {x + 5:.1f},{y + 4:.1f} {x - 5:.1f},{y + 4:.1f}"
        return f'<polygon points="{pts}" fill="{colour}">{tip}</polygon>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}">{tip}</circle>'


def describe(chart: Chart) -> str:
    """Return a sentence summarising the chart for assistive technology."""
    parts = []
    for s in chart.series:
        if not s.points:
            continue
        first, last = s.points[0], s.points[-1]
        values = [v for _, v in s.points]
        parts.append(
            f"{s.label}: {len(s.points)} values from {first[0]:%Y-%m-%d} to {last[0]:%Y-%m-%d}, "
            f"lowest {_fmt(min(values))}, highest {_fmt(max(values))}, latest {_fmt(last[1])} "
            f"{chart.unit}".rstrip()
        )
    if chart.band and any(b is not None for b in chart.band):
        low, high = chart.band
        parts.append(f"{chart.band_label} {_fmt(low) if low is not None else '-'} to "
                     f"{_fmt(high) if high is not None else '-'} {chart.unit}".rstrip())
        outside = sum(1 for s in chart.series for _, v in s.points if _outside(v, chart.band))
        parts.append(f"{outside} value{'s' if outside != 1 else ''} outside the {chart.band_label}")
    return ". ".join(parts) + "." if parts else "No values."


def render(chart: Chart) -> str:
    """Return the chart as an <svg> element (escaped, safe to mark safe)."""
    uid = next(_ids)
    title_id, desc_id = f"chart-title-{uid}", f"chart-desc-{uid}"
    points = [p for s in chart.series for p in s.points]
    head = (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{title_id} {desc_id}" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{title_id}">{escape(chart.title)}</title>'
        f'<desc id="{desc_id}">{escape(describe(chart))}</desc>'
    )
    if not points:
        return head + (f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
                       "No values</text></svg>")
    values = [v for _, v in points]
    band = chart.band or (None, None)
    low = min([*values, *(b for b in band if b is not None)])
    high = max([*values, *(b for b in band if b is not None)])
    pad = (high - low) * 0.1 or max(abs(high) * 0.1, 1)
    low, high = low - pad, high + pad
    times = [t.timestamp() for t, _ in points]
    t0, t1 = min(times), max(times)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: datetime) -> float:
        return LEFT + (plot_w / 2 if t1 == t0 else (t.timestamp() - t0) / (t1 - t0) * plot_w)

    def y(v: float) -> float:
        return TOP + (high - v) / (high - low) * plot_h

    out = [head, '<g class="axes" aria-hidden="true">']
    if chart.band and any(b is not None for b in chart.band):
        b_low = band[0] if band[0] is not None else low
        b_high = band[1] if band[1] is not None else high
        out.append(
            f'<rect class="band" x="{LEFT}" y="{y(b_high):.1f}" width="{plot_w}" '
            f'height="{max(y(b_low) - y(b_high), 0):.1f}" fill="#e3f1e4"/>'
        )
        # The pale band alone is too faint (WCAG 1.4.11): its limits get dashed lines in a
        # colour with 3:1 contrast on white.
        for limit in band:
            if limit is not None:
                out.append(f'<line class="band-limit" x1="{LEFT}" x2="{WIDTH - RIGHT}" '
                           f'y1="{y(limit):.1f}" y2="{y(limit):.1f}" stroke="#2e7d32" '
                           'stroke-dasharray="6 4"/>')
    for tick in _ticks(low, high):
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
                   'stroke="#d0d0d0"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">'
                   f"{escape(_fmt(tick))}</text>")
    first, last = min(points)[0], max(points)[0]
    out.append(f'<text x="{LEFT}" y="{TOP + plot_h + 18}">{first:%Y-%m-%d}</text>')
    if last != first:
        out.append(f'<text x="{WIDTH - RIGHT}" y="{TOP + plot_h + 18}" text-anchor="end">'
                   f"{last:%Y-%m-%d}</text>")
        if t1 - t0 > 86400 * 60:  # a middle date when the points span months
            middle = datetime.fromtimestamp((t0 + t1) / 2, tz=first.tzinfo)
            out.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{TOP + plot_h + 18}" '
                       f'text-anchor="middle">{middle:%Y-%m-%d}</text>')
    out.append(f'<text x="4" y="16">{escape(chart.unit)}</text>')
    out.append("</g>")
    for index, s in enumerate(chart.series):
        colour, marker = COLOURS[index % len(COLOURS)], MARKERS[index % len(MARKERS)]
        coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in s.points)
        out.append(f'<g class="series"><polyline points="{coords}" fill="none" stroke="{colour}" '
                   'stroke-width="2"/>')
        for t, v in s.points:
            side = _outside(v, chart.band)
            tip = f"{s.label} {_fmt(v)} {chart.unit} on {t:%Y-%m-%d %H:%M}"
            if side:
                # Out of range: a ring around the point, so that it stands out without colour.
                tip += f" ({side} the {chart.band_label})"
                out.append(f'<circle class="outside" cx="{x(t):.1f}" cy="{y(v):.1f}" r="8" '
                           f'fill="none" stroke="{COLOURS[1]}" stroke-width="2"/>')
            out.append(_marker(marker, x(t), y(v), colour, tip))
        out.append("</g>")
    # Legend
    lx = LEFT
    for index, s in enumerate(chart.series):
        colour = COLOURS[index % len(COLOURS)]
        out.append(_marker(MARKERS[index % len(MARKERS)], lx + 6, HEIGHT - 10, colour, s.label))
        out.append(f'<text x="{lx + 14}" y="{HEIGHT - 5}">{escape(s.label)}</text>')
        lx += 24 + 8 * len(s.label)
    out.append("</svg>")
    return "".join(out)


VITAL_CHARTS = (
    ("Blood pressure", "mmHg", (("systolic", "Systolic"), ("diastolic", "Diastolic"))),
    ("Heart rate", "bpm", (("heart_rate", "Heart rate"),)),
    ("Weight", "kg", (("weight_kg", "Weight"),)),
    ("Temperature", "°C", (("temperature_c", "Temperature"),)),
)


def vital_charts(rows: list[tuple[datetime, dict]]) -> list[Chart]:
    """Return the vital-sign charts (BP, HR, weight, temperature) of measurements in time order."""
    charts = []
    for title, unit, measures in VITAL_CHARTS:
        series = [
            Series(label, [(when, float(data[name])) for when, data in rows
                           if data.get(name) is not None])
            for name, label in measures
        ]
        if any(s.points for s in series):
            charts.append(Chart(title, unit, series))
    return charts


def lab_charts(results: list[dict]) -> list[Chart]:
    """Return one chart per test with numeric values, against its latest reference range."""
    by_test: dict[str, list[dict]] = {}
    for row in results:
        if row.get("value") is not None:
            by_test.setdefault(row["loinc_code"], []).append(row)
    charts = []
    for rows in by_test.values():
        rows.sort(key=lambda r: r["effective_at"])
        latest = rows[-1]
        band = (latest.get("reference_low"), latest.get("reference_high"))
        charts.append(Chart(
            f"{latest['display']} ({latest['loinc_code']})", latest.get("unit") or "",
            [Series(latest["display"], [(r["effective_at"], float(r["value"])) for r in rows])],
            band=band if any(b is not None for b in band) else None,
        ))
    # Most telling first: tests with a reference range, those with values outside it, then the
    # most recently measured.
    charts.sort(key=lambda c: c.series[0].points[-1][0].timestamp(), reverse=True)
    charts.sort(key=lambda c: (c.band is None,
                               not any(_outside(v, c.band) for _, v in c.series[0].points)))
    return charts

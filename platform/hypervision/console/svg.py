"""Charts and maps drawn on the server as SVG: no chart library, no tile server, nothing
loaded from anywhere. Presentation attributes and classes only (the console's CSP allows
no inline style); every figure has a title and a text alternative next to it.

- `line_chart`: one metric over time, with its time and value axes.
- `device_map`: devices placed by latitude and longitude on a plain projected plot
  (equirectangular, longitudes scaled by the cosine of the mean latitude), with a scale
  bar and a graticule: positions without any base map that would need outside tiles.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 760, 300
PAD_L, PAD_R, PAD_T, PAD_B = 64, 16, 16, 40


def _clusters(pins: Sequence[Pin], project: Callable[[Pin], tuple[float, float]],
              label: Callable[[int, int], str]) -> list[str]:
    cells: dict[tuple[int, int], list[float]] = {}  # x sum, y sum, count, worst, silent
    for p in pins:
        x, y = project(p)
        cell = cells.setdefault((int(x // CELL_PX), int(y // CELL_PX)), [0.0, 0.0, 0, 0, 0])
        cell[0] += x
        cell[1] += y
        cell[2] += 1
        cell[3] = max(cell[3], WORST.get(p.state, 0))
        cell[4] += p.state == "silent"
    names = {v: k for k, v in WORST.items()}
    out = []
    for sx, sy, n, worst, silent in cells.values():
        r = min(CELL_PX / 2 - 1, 4 + 1.5 * math.sqrt(n))
        text = escape(label(int(n), int(silent)))
        out.append(f'<circle class="dot {names[int(worst)]}" cx="{sx / n:.1f}"'
                   f' cy="{sy / n:.1f}" r="{r:.1f}"><title>{text}</title></circle>')
    return out


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / ticks if span > 0 else 1.0
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * power >= raw:
            return m * power
    return 10 * power


def _fmt(value: float) -> str:
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}".replace(",", "\u202f")
    return f"{value:.2f}".rstrip("0").rstrip(".")


def line_chart(points: Sequence[tuple[dt.datetime, float]], title: str, unit: str,
               tz: dt.tzinfo) -> Markup:
    """A line of (time, value) points; an empty list gives an empty frame with a note."""
    w, h = WIDTH, HEIGHT
    parts = [f'<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-labelledby="chart-title"'
             ' xmlns="http://www.w3.org/2000/svg">',
             f'<title id="chart-title">{escape(title)}</title>']
    x0, x1, y0, y1 = PAD_L, w - PAD_R, PAD_T, h - PAD_B
    parts.append(f'<line class="axis" x1="{x0}" y1="{y1}" x2="{x1}" y2="{y1}"/>')
    parts.append(f'<line class="axis" x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}"/>')
    if not points:
        parts.append(f'<text x="{(x0 + x1) / 2}" y="{(y0 + y1) / 2}" text-anchor="middle">—</text>')
        parts.append("</svg>")
        return Markup("".join(parts))
    times = [p[0].timestamp() for p in points]
    values = [p[1] for p in points]
    t_min, t_max = min(times), max(times)
    if t_max == t_min:
        t_min, t_max = t_min - 1800, t_max + 1800
    v_min, v_max = min(values), max(values)
    if v_max == v_min:
        v_min, v_max = v_min - 1, v_max + 1
    step = _nice_step(v_max - v_min)
    v_lo, v_hi = math.floor(v_min / step) * step, math.ceil(v_max / step) * step

    def sx(t: float) -> float:
        return x0 + (t - t_min) / (t_max - t_min) * (x1 - x0)

    def sy(v: float) -> float:
        return y1 - (v - v_lo) / (v_hi - v_lo) * (y1 - y0)

    v = v_lo
    while v <= v_hi + step / 2:
        y = sy(v)
        parts.append(f'<line class="grid" x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}"/>')
        parts.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(v)}</text>')
        v += step
    span_days = (t_max - t_min) / 86400
    label = "%d/%m %H:%M" if span_days <= 2 else "%d/%m"
    for i in range(6):
        t = t_min + (t_max - t_min) * i / 5
        x = sx(t)
        text = dt.datetime.fromtimestamp(t, tz).strftime(label)
        anchor = "start" if i == 0 else "end" if i == 5 else "middle"
        parts.append(f'<line class="axis" x1="{x:.1f}" y1="{y1}" x2="{x:.1f}" y2="{y1 + 4}"/>')
        parts.append(f'<text x="{x:.1f}" y="{y1 + 18}" text-anchor="{anchor}">{text}</text>')
    if unit:
        parts.append(f'<text x="{x0 - 6}" y="{y0 + 2}" text-anchor="end">{escape(unit)}</text>')
    path = " ".join(f"{'M' if i == 0 else 'L'}{sx(t):.1f},{sy(v):.1f}"
                    for i, (t, v) in enumerate(zip(times, values, strict=True)))
    parts.append(f'<path class="line" d="{path}"/>')
    if len(points) == 1:
        parts.append(f'<circle class="dot" cx="{sx(times[0]):.1f}"'
                     f' cy="{sy(values[0]):.1f}" r="4"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


# The console's stylesheet for maps (console.css), as presentation attributes.
PAINT = {
    'class="grid"': 'class="grid" stroke="#e1e4e8" stroke-width="1"',
    'class="axis"': 'class="axis" stroke="#6b6b6b"',
    "<text ": '<text fill="#1b1b1b" font-size="12" font-family="sans-serif" ',
    'class="dot ok"': 'class="dot ok" fill="#0a4b8c" stroke="#fff"',
    'class="dot silent"': 'class="dot silent" fill="#a4161a" stroke="#fff"',
    'class="dot battery"': 'class="dot battery" fill="#8a4b00" stroke="#fff"',
}


def _painted(drawn: str) -> str:
    for plain, painted in PAINT.items():
        drawn = drawn.replace(plain, painted)
    # A white ground and a size of its own, right after the title.
    head, rest = drawn.split("</title>", 1)
    head = head.replace('role="group"', f'role="img" width="{MAP_W}" height="{MAP_H}"', 1)
    return f'{head}</title><rect width="100%" height="100%" fill="#fff"/>{rest}'


@dataclass(frozen=True)
class Pin:
    lat: float
    lon: float
    label: str
    href: str
    state: str  # ok, silent, battery


MAP_W, MAP_H, MAP_PAD = 760, 460, 30


MAX_DOTS = 400
CELL_PX = 24
WORST = {"silent": 2, "battery": 1, "ok": 0}


def device_map(pins: Sequence[Pin], title: str, scale_label: str,
               cluster_label: Callable[[int, int], str] = lambda n, silent: f"{n} ({silent})",
               max_dots: int = MAX_DOTS, standalone: bool = False) -> Markup:
    """Devices as dots on a projected plot; each dot links to its device's page. Beyond
    `max_dots` devices, those within the same cell of CELL_PX pixels become one dot sized
    by their number, coloured by the worst state among them, and titled with
    `cluster_label(devices, silent)`: a page stays light with thousands of devices, and
    the list below links to each. `standalone`: an image file of its own (an <img> shows
    it, without the console's stylesheet), painted by presentation attributes."""
    w, h, pad = MAP_W, MAP_H, MAP_PAD
    # A group, not an image: its dots are links a keyboard reaches.
    parts = [f'<svg class="map" viewBox="0 0 {w} {h}" role="group" aria-labelledby="map-title"'
             ' xmlns="http://www.w3.org/2000/svg">',
             f'<title id="map-title">{escape(title)}</title>']
    if not pins:
        parts.append(f'<text x="{w / 2}" y="{h / 2}" text-anchor="middle">—</text></svg>')
        drawn = "".join(parts)
        return Markup(_painted(drawn) if standalone else drawn)
    lat_mid = sum(p.lat for p in pins) / len(pins)
    k = math.cos(math.radians(lat_mid))
    xs = [p.lon * k for p in pins]
    ys = [p.lat for p in pins]
    x_min, x_max, y_min, y_max = min(xs), max(xs), min(ys), max(ys)
    span = max(x_max - x_min, (y_max - y_min) * (w - 2 * pad) / (h - 2 * pad), 0.002)
    scale = (w - 2 * pad) / span  # pixels per degree of latitude
    cx, cy = (x_min + x_max) / 2, (y_min + y_max) / 2

    def project(p: Pin) -> tuple[float, float]:
        return w / 2 + (p.lon * k - cx) * scale, h / 2 - (p.lat - cy) * scale

    # Graticule every nice fraction of a degree.
    step = _nice_step(span, 6)
    g = math.floor((cx - span) / step) * step
    while g <= cx + span:
        x = w / 2 + (g - cx) * scale
        if 0 <= x <= w:
            parts.append(f'<line class="grid" x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{h}"/>')
        g += step
    g = math.floor((cy - span) / step) * step
    while g <= cy + span:
        y = h / 2 - (g - cy) * scale
        if 0 <= y <= h:
            parts.append(f'<line class="grid" x1="0" y1="{y:.1f}" x2="{w}" y2="{y:.1f}"/>')
        g += step
    # Scale bar: one degree of latitude is 111.32 km.
    metres_per_px = 111_320 / scale
    bar_m = _nice_step(metres_per_px * 150, 1)
    bar_px = bar_m / metres_per_px
    text = f"{bar_m / 1000:g} km" if bar_m >= 1000 else f"{bar_m:g} m"
    parts.append(f'<line class="axis" x1="{pad}" y1="{h - 14}" x2="{pad + bar_px:.1f}"'
                 f' y2="{h - 14}" stroke-width="3"/>')
    parts.append(f'<text x="{pad}" y="{h - 20}">{escape(scale_label)} {text}</text>')
    if len(pins) <= max_dots:
        for p in pins:
            x, y = project(p)
            parts.append(f'<a href="{escape(p.href)}" aria-label="{escape(p.label)}">'
                         f"<title>{escape(p.label)}</title>"
                         f'<circle class="dot {escape(p.state)}" cx="{x:.1f}" cy="{y:.1f}"'
                         ' r="6"/></a>')
    else:
        parts.extend(_clusters(pins, project, cluster_label))
    parts.append("</svg>")
    drawn = "".join(parts)
    return Markup(_painted(drawn) if standalone else drawn)

"""The coverage map as a standalone SVG (docs/syndicate.md, "Radio coverage"): no tile
server, nothing loaded from anywhere, as the console's device map
(hypervision.console.svg): positions on a plain equirectangular plot (longitudes scaled
by the cosine of the mean latitude), a graticule and a scale bar.

Gateways are squares (hollow when they hear no device), devices are dots: green when two
gateways or more hear them, orange when only one does (at risk), grey when none does; a
line joins each device to each gateway hearing it. Colours are presentation attributes,
so the SVG renders the same as a file, in an <img> or inline under a strict CSP.
"""

from __future__ import annotations

import math

from markupsafe import escape

from hypervision.syndicate.coverage import Coverage

W, H, PAD, LEGEND = 760, 520, 70, 60
COLOURS = {"covered": "#2e7d32", "at-risk": "#ef6c00", "unheard": "#9e9e9e",
           "gateway": "#1a237e", "link": "#90a4ae", "grid": "#eceff1", "text": "#263238"}


def _nice(span: float) -> float:
    raw = span / 6 if span > 0 else 1.0
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * power >= raw:
            return m * power
    return 10 * power


def svg(c: Coverage, title: str) -> str:
    points = [(d.lat, d.lon) for d in c.devices if d.lat is not None and d.lon is not None]
    points += [(g.lat, g.lon) for g in c.gateways if g.lat is not None and g.lon is not None]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="map coverage"'
           f' viewBox="0 0 {W} {H + LEGEND}"'
           f' width="{W}" height="{H + LEGEND}" role="img" aria-labelledby="coverage-title">',
           f'<title id="coverage-title">{escape(title)}</title>',
           f'<rect x="0" y="0" width="{W}" height="{H + LEGEND}" fill="#ffffff"/>']
    if not points:
        out.append(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle"'
                   f' fill="{COLOURS["text"]}">—</text></svg>')
        return "".join(out)
    k = math.cos(math.radians(sum(p[0] for p in points) / len(points)))
    xs, ys = [p[1] * k for p in points], [p[0] for p in points]
    span = max(max(xs) - min(xs), (max(ys) - min(ys)) * (W - 2 * PAD) / (H - 2 * PAD), 0.002)
    scale = (W - 2 * PAD) / span
    cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2

    def at(lat: float, lon: float) -> tuple[float, float]:
        return W / 2 + (lon * k - cx) * scale, H / 2 - (lat - cy) * scale

    step = _nice(span)
    g = math.floor((cx - span) / step) * step
    while g <= cx + span:
        x = W / 2 + (g - cx) * scale
        if 0 <= x <= W:
            out.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{H}"'
                       f' stroke="{COLOURS["grid"]}"/>')
        g += step
    g = math.floor((cy - span) / step) * step
    while g <= cy + span:
        y = H / 2 - (g - cy) * scale
        if 0 <= y <= H:
            out.append(f'<line x1="0" y1="{y:.1f}" x2="{W}" y2="{y:.1f}"'
                       f' stroke="{COLOURS["grid"]}"/>')
        g += step
    gateways = {g.gateway_id: g for g in c.gateways}
    for d in c.devices:
        if d.lat is None or d.lon is None:
            continue
        x0, y0 = at(d.lat, d.lon)
        for link in d.links:
            gw = gateways.get(link.gateway_id)
            if gw is None or gw.lat is None or gw.lon is None:
                continue
            x1, y1 = at(gw.lat, gw.lon)
            out.append(f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}"'
                       f' stroke="{COLOURS["link"]}" stroke-width="1"/>')
    for gw in c.gateways:
        if gw.lat is None or gw.lon is None:
            continue
        x, y = at(gw.lat, gw.lon)
        fill = COLOURS["gateway"] if gw.devices else "#ffffff"
        label = f"{gw.name} ({len(gw.devices)} capteur(s))"
        out.append(f'<g class="gateway"><title>{escape(label)}</title>'
                   f'<rect x="{x - 7:.1f}" y="{y - 7:.1f}" width="14" height="14" fill="{fill}"'
                   f' stroke="{COLOURS["gateway"]}" stroke-width="2"/>'
                   f'<text x="{x + (10 if x < W / 2 else -10):.1f}" y="{y - 10:.1f}"'
                   f' font-size="12" text-anchor="{"start" if x < W / 2 else "end"}"'
                   f' fill="{COLOURS["text"]}">{escape(gw.name)}</text></g>')
    for d in c.devices:
        if d.lat is None or d.lon is None:
            continue
        x, y = at(d.lat, d.lon)
        kind = "unheard" if not d.links else "at-risk" if d.at_risk else "covered"
        margin = "" if d.margin_db is None else f", marge {d.margin_db:g} dB"
        label = f"{d.name} ({d.member}) : {len(d.links)} passerelle(s){margin}"
        out.append(f'<g class="device {kind}"><title>{escape(label)}</title>'
                   f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="{COLOURS[kind]}"'
                   ' stroke="#ffffff" stroke-width="1.5"/></g>')
    metres_per_px = 111_320 / scale
    bar_m = _nice(metres_per_px * 900)
    bar_px = bar_m / metres_per_px
    text = f"{bar_m / 1000:g} km" if bar_m >= 1000 else f"{bar_m:g} m"
    out.append(f'<line x1="40" y1="{H - 12}" x2="{40 + bar_px:.1f}" y2="{H - 12}"'
               f' stroke="{COLOURS["text"]}" stroke-width="3"/>'
               f'<text x="40" y="{H - 18}" font-size="12" fill="{COLOURS["text"]}">'
               f"{text}</text>")
    legend = [("covered", "2 passerelles ou plus"), ("at-risk", "une seule (à risque)"),
              ("unheard", "non entendu")]
    x = 40
    y = H + 30
    out.append(f'<line x1="0" y1="{H}" x2="{W}" y2="{H}" stroke="{COLOURS["grid"]}"/>')
    for kind, text in legend:
        out.append(f'<circle cx="{x}" cy="{y - 4}" r="6" fill="{COLOURS[kind]}"/>'
                   f'<text x="{x + 12}" y="{y}" font-size="12" fill="{COLOURS["text"]}">'
                   f"{text}</text>")
        x += 30 + 7 * len(text)  # roughly the text's width at 12 px
    out.append(f'<rect x="{x - 7}" y="{y - 11}" width="14" height="14" fill="#ffffff"'
               f' stroke="{COLOURS["gateway"]}" stroke-width="2"/>'
               f'<text x="{x + 12}" y="{y}" font-size="12" fill="{COLOURS["text"]}">'
               "passerelle sans capteur</text>")
    out.append("</svg>")
    return "".join(out)

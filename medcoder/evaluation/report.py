"""The eval report as one self-contained HTML page: headline table, per-chapter F1 and error-type
bar charts (inline SVG, no plotting library), ATC exact match by level, and cost per note."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

COLORS = {
    "retrieval": "#8c8c8c",
    "flat": "#e69f00",
    "tree": "#0072b2",
    "memory": "#cc79a7",
    "ranked-nomodel": "#009e73",
    "ranked": "#d55e00",
}


def _reliability(name: str, cal: dict[str, Any]) -> str:
    """A reliability diagram: accuracy against mean confidence per probability bin (the diagonal is perfect)."""
    size, pad = 260, 40
    parts = [
        f'<svg width="{size + 2 * pad + 160}" height="{size + 2 * pad}" role="img" '
        f'aria-label="reliability diagram {html.escape(name)}">',
        f'<text x="{pad}" y="16" font-weight="bold">Reliability: {html.escape(name)} (ECE {cal.get("ece")})</text>',
        f'<rect x="{pad}" y="{pad}" width="{size}" height="{size}" fill="none" stroke="#999"/>',
        f'<line x1="{pad}" y1="{pad + size}" x2="{pad + size}" y2="{pad}" stroke="#bbb" stroke-dasharray="4"/>',
        f'<text x="{pad + size / 2}" y="{pad + size + 30}" text-anchor="middle" font-size="12">predicted probability</text>',
        f'<text x="12" y="{pad + size / 2}" font-size="12" transform="rotate(-90 12 {pad + size / 2})" '
        f'text-anchor="middle">share correct</text>',
    ]
    pts = []
    for b in cal.get("bins", []):
        x = pad + b["confidence"] * size
        y = pad + size - b["accuracy"] * size
        r = 2 + min(8.0, b["n"] ** 0.33)
        pts.append(f"{x:.1f},{y:.1f}")
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{COLORS.get(name, "#555")}" opacity="0.8">'
            f"<title>{b['lo']:.1f}-{b['hi']:.1f}: {b['n']} codes, confidence {b['confidence']}, "
            f"correct {b['accuracy']}</title></circle>"
        )
    if pts:
        parts.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="{COLORS.get(name, "#555")}"/>')
    auto = cal.get("auto_accept_share_of_predicted")
    if auto is not None:
        parts.append(
            f'<text x="{pad + size + 10}" y="{pad + 20}" font-size="12">auto-accept ≥ {cal.get("auto_accept_threshold")}'
            f'</text><text x="{pad + size + 10}" y="{pad + 36}" font-size="12">{auto:.1%} of predicted codes,</text>'
            f'<text x="{pad + size + 10}" y="{pad + 52}" font-size="12">precision {cal.get("auto_accept_precision")}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _bars(title: str, groups: list[str], series: dict[str, list[float]], vmax: float = 1.0, fmt: str = "{:.2f}") -> str:
    """Grouped horizontal bars: one row per group, one bar per series."""
    row_h, bar_h, left, width = 8 + 14 * len(series), 12, 150, 420
    height = 30 + row_h * len(groups) + 20
    parts = [
        f'<svg width="{left + width + 80}" height="{height}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="0" y="16" font-weight="bold">{html.escape(title)}</text>',
    ]
    for gi, g in enumerate(groups):
        y0 = 30 + gi * row_h
        parts.append(
            f'<text x="{left - 6}" y="{y0 + row_h / 2 + 4}" text-anchor="end" font-size="12">{html.escape(g)}</text>'
        )
        for si, (name, values) in enumerate(series.items()):
            v = values[gi]
            w = 0 if vmax <= 0 else max(0.0, min(1.0, v / vmax)) * width
            y = y0 + 4 + si * 14
            parts.append(
                f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{COLORS.get(name, "#555")}">'
                f"<title>{html.escape(name)} {g}: {fmt.format(v)}</title></rect>"
            )
            parts.append(f'<text x="{left + w + 4:.1f}" y="{y + 10}" font-size="11">{fmt.format(v)}</text>')
    legend_y = height - 6
    for si, name in enumerate(series):
        parts.append(
            f'<rect x="{left + si * 110}" y="{legend_y - 10}" width="10" height="10" fill="{COLORS.get(name, "#555")}"/>'
            f'<text x="{left + si * 110 + 14}" y="{legend_y}" font-size="12">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render(report: dict[str, Any]) -> str:
    m = report["metrics"]
    strategies = report["strategies"]
    ds = report["dataset"]
    out = [
        f"<h1>medcoder eval: {html.escape(ds['name'])}</h1>",
        f"<p>{ds['items']} items, workflow <b>{html.escape(report['workflow'])}</b>, model "
        f"<b>{html.escape(report['model']['name'])}</b> (sha256 {html.escape((report['model']['sha256'] or '')[:12])}), "
        f"{report['seconds']} s in all.</p>",
    ]
    if ds["layout"] == "dpd":
        rows = [
            [
                k,
                *v["exact_match_by_level"].values(),
                v.get("exact_match_in_file", ""),
                v["cost_per_item"]["seconds"],
                v["cost_per_item"]["model_calls"],
            ]
            for k, v in m.items()
        ]
        head = ["field/strategy", "L1", "L2", "L3", "L4", "L5 (exact)", "L5, gold in the ATC file", "s/item"]
        out.append(_table([*head, "calls/item"], rows))
        for fld in dict.fromkeys(k.split("/")[0] for k in m):
            series = {
                s: list(m[f"{fld}/{s}"]["exact_match_by_level"].values()) for s in strategies if f"{fld}/{s}" in m
            }
            out.append(
                _bars(
                    f"ATC exact match by level, from the {fld}",
                    ["level 1", "level 2", "level 3", "level 4", "level 5"],
                    series,
                )
            )
    else:
        rows = [
            [
                s,
                m[s]["micro"]["precision"],
                m[s]["micro"]["recall"],
                m[s]["micro"]["f1"],
                m[s]["macro"]["f1"],
                m[s]["category_micro"]["f1"],
                m[s]["map"],
                m[s]["cost_per_note"]["seconds"],
                m[s]["cost_per_note"]["model_calls"],
            ]
            for s in strategies
        ]
        out.append(
            _table(
                [
                    "strategy",
                    "micro P",
                    "micro R",
                    "micro F1",
                    "macro F1",
                    "category F1",
                    "MAP",
                    "s/note",
                    "calls/note",
                ],
                rows,
            )
        )
        chapters = sorted(
            {c for s in strategies for c in m[s]["per_chapter"]},
            key=lambda c: (not c.startswith("CH"), int(c[2:]) if c[2:].isdigit() else 99, c),
        )
        series = {s: [m[s]["per_chapter"].get(c, {}).get("f1", 0.0) for c in chapters] for s in strategies}
        out.append(_bars("F1 per ICD-10-CM chapter", chapters, series))
        kinds = ["correct", "too_general", "too_specific", "wrong_branch", "extra", "missed"]
        counts = {s: [float(m[s]["error_types"].get(k, 0)) for k in kinds] for s in strategies}
        out.append(
            _bars(
                "Predictions and misses by type",
                kinds,
                counts,
                vmax=max([1.0, *[v for vs in counts.values() for v in vs]]),
                fmt="{:.0f}",
            )
        )
        for s in strategies:
            if m[s].get("calibration"):
                out.append(_reliability(s, m[s]["calibration"]))
                for kind, cal in (m[s]["calibration"].get("by_decision") or {}).items():
                    out.append(_reliability(f"{s}: {kind} decisions ({cal.get('pairs', 0)} codes)", cal))
    errors = [r for r in report.get("items", []) if r.get("error")]
    if errors:
        out.append("<h2>Items that failed</h2>" + _table(["id", "error"], [[r["id"], r["error"]] for r in errors]))
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1000px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}svg{display:block;margin:1.5em 0}"
    )
    return f"<!doctype html><html><head><meta charset='utf-8'><title>medcoder eval</title><style>{style}</style></head><body>{''.join(out)}</body></html>"


def write_html(report: dict[str, Any], path: str | Path) -> Path:
    p = Path(path)
    p.write_text(render(report), encoding="utf-8")
    return p


# the pieces other reports draw with (the re-learn report's before/after page)
reliability_svg = _reliability
bars_svg = _bars
html_table = _table

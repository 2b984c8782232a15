"""Status changes per day as a bar chart in SVG, drawn on the server (no script, no library)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from markupsafe import Markup, escape

WIDTH = 720
HEIGHT = 180
LEFT = 36
BOTTOM = 24
TOP = 12


def _nice_ceiling(value: int) -> int:
    """The axis top: 1, 2, 5 or 10 times a power of ten, at least `value`."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def bar_chart(days: Sequence[tuple[date, int]], *, label: str) -> Markup:
    """An accessible SVG bar chart of one count per day (styled by the console's CSS)."""
    top = _nice_ceiling(max([count for _, count in days] + [1]))
    plot_width = WIDTH - LEFT
    plot_height = HEIGHT - BOTTOM - TOP
    slot = plot_width / max(len(days), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
    ]
    for fraction in (0, 0.5, 1):
        y = TOP + plot_height * (1 - fraction)
        value = f"{top * fraction:g}"
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value}</text>'
        )
    for index, (day, count) in enumerate(days):
        height = plot_height * count / top
        x = LEFT + index * slot + slot * 0.15
        y = TOP + plot_height - height
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{height:.1f}"><title>{day.isoformat()}: {count}</title></rect>'
        )
        last = index == len(days) - 1
        if index % 5 == 0 or last:
            anchor, at = ("end", x + slot * 0.7) if last else ("middle", x + slot * 0.35)
            parts.append(
                f'<text class="axis" x="{at:.1f}" y="{HEIGHT - 6}" '
                f'text-anchor="{anchor}">{day.strftime("%m-%d")}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every value above is a number, date or escaped

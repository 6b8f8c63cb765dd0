"""Server-side SVG bar charts; each page shows the same numbers in a table beside it."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

BAR_HEIGHT = 22
GAP = 6
LABEL_WIDTH = 260
PLOT_WIDTH = 360


def bar_chart(
    chart_id: str, title: str, labels: list[str], values: list[float | str | None]
) -> Markup:
    """Horizontal bars; hidden ([c]) or missing values get no bar and say so."""
    numbers = [v for v in values if isinstance(v, (int, float))]
    top = max(numbers, default=0) or 1
    height = len(labels) * (BAR_HEIGHT + GAP) + GAP
    width = LABEL_WIDTH + PLOT_WIDTH + 80
    parts = [
        f'<svg class="tw-chart" id="{chart_id}" role="img" aria-labelledby="{chart_id}-title"'
        f' viewBox="0 0 {width} {height}" width="100%" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = GAP + i * (BAR_HEIGHT + GAP)
        text_y = y + BAR_HEIGHT * 0.7
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{text_y}" text-anchor="end" font-size="14">{escape(label)}</text>'  # noqa: E501
        )
        if isinstance(value, (int, float)):
            bar = PLOT_WIDTH * value / top
            shown = f"{value:g}"
            parts.append(
                f'<rect x="{LABEL_WIDTH}" y="{y}" width="{bar:.1f}" height="{BAR_HEIGHT}" fill="#1d70b8"/>'  # noqa: E501
            )
        else:
            bar, shown = 0.0, "[c]" if value == "[c]" else "no data"
        parts.append(
            f'<text x="{LABEL_WIDTH + bar + 6:.1f}" y="{text_y}" font-size="14">{escape(shown)}</text>'  # noqa: E501
        )
    parts.append("</svg>")
    return Markup("".join(parts))

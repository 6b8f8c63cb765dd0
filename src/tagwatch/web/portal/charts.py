"""Violations by type over time: counts per bucket, drawn as a server-side SVG bar chart.

The chart is decorative for screen readers (`aria-hidden`); the same counts are given as a
table next to it, which is what assistive technology reads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from xml.sax.saxutils import escape

from markupsafe import Markup

from tagwatch.london import LONDON

# GOV.UK palette colours with enough contrast against white.
PALETTE = ("#1d70b8", "#d4351c", "#00703c", "#4c2c92", "#f47738", "#5694ca", "#912b88", "#85994b")


@dataclass(frozen=True)
class Buckets:
    labels: list[str]
    types: list[str]
    counts: dict[str, list[int]]  # type -> count per bucket

    @property
    def totals(self) -> list[int]:
        return [sum(self.counts[t][i] for t in self.types) for i in range(len(self.labels))]

    def colour(self, violation_type: str) -> str:
        return PALETTE[self.types.index(violation_type) % len(PALETTE)]


def bucket_by_day(
    by_day: Mapping[str, Mapping[str, int]], start: dt.datetime, end: dt.datetime
) -> Buckets:
    """Counts per UK calendar day (ISO date -> type -> count) into daily or weekly buckets."""
    return bucket_violations(
        (
            (kind, dt.date.fromisoformat(day))
            for day, counts in by_day.items()
            for kind, count in counts.items()
            for _ in range(count)
        ),
        start,
        end,
    )


def bucket_violations(
    violations: Iterable[tuple[str, dt.datetime | dt.date]], start: dt.datetime, end: dt.datetime
) -> Buckets:
    """Daily buckets for up to 31 days, weekly beyond (UK dates)."""
    first = start.astimezone(LONDON).date()
    last = end.astimezone(LONDON).date()
    step = 1 if (last - first).days <= 31 else 7
    edges = []
    day = first
    while day <= last:
        edges.append(day)
        day += dt.timedelta(days=step)
    labels = [d.strftime("%-d %b") for d in edges]
    items = list(violations)
    types = sorted({kind for kind, _ in items})
    counts = {kind: [0] * len(edges) for kind in types}
    for kind, at in items:
        day = at.astimezone(LONDON).date() if isinstance(at, dt.datetime) else at
        index = (day - first).days // step
        if 0 <= index < len(edges):
            counts[kind][index] += 1
    return Buckets(labels, types, counts)


def bar_chart_svg(buckets: Buckets, width: int = 640, height: int = 200) -> Markup:
    if not buckets.labels:
        return Markup("")
    peak = max([*buckets.totals, 1])
    left, bottom, top = 32, 28, 8
    plot_w, plot_h = width - left - 8, height - bottom - top
    bar_w = plot_w / len(buckets.labels)
    parts = [
        f'<svg class="tw-chart" aria-hidden="true" focusable="false"'
        f' viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        ' xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}"'
        ' stroke="#0b0c0c"/>',
        f'<text x="{left - 4}" y="{top + 10}" text-anchor="end" font-size="11">{peak}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" font-size="11">0</text>',
    ]
    label_every = max(1, len(buckets.labels) // 10)
    for i, label in enumerate(buckets.labels):
        x = left + i * bar_w
        y: float = top + plot_h
        for kind in buckets.types:
            count = buckets.counts[kind][i]
            if not count:
                continue
            h = plot_h * count / peak
            y -= h
            title = f"{escape(label)}: {count} {escape(kind)}"
            parts.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(bar_w - 2, 1):.1f}"'
                f' height="{h:.1f}" fill="{buckets.colour(kind)}"><title>{title}</title></rect>'
            )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - 10}" text-anchor="middle"'
                f' font-size="11">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))

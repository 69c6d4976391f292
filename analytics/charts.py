"""Bar charts as inline SVG, drawn on the server: no script, no chart library, nothing
fetched. Each has a ``<title>`` and ``<desc>`` (role="img", aria-labelledby) and sits
beside a table of the same figures, which is the text alternative.

Colours are SVG presentation attributes, not ``style``: the Content-Security-Policy
(style-src 'self') refuses inline styles, not attributes.
"""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 640
HEIGHT = 200
AXIS_SPACE = 28  # below the bars: the labels
TOP_SPACE = 16  # above the tallest bar: its value
BAR_COLOUR = "#1a56b0"
TEXT_COLOUR = "#333333"


def bar_chart(chart_id: str, title: str, description: str, labels: list[str], values: list[int]) -> SafeString:
    """``labels`` under the bars (every nth when many), each bar's value above it when room."""
    count = max(1, len(values))
    top = max(values, default=0) or 1
    slot = WIDTH / count
    bar_width = max(1.0, slot * 0.7)
    plot_height = HEIGHT - AXIS_SPACE - TOP_SPACE
    label_every = max(1, round(count / 15))  # at most ~15 labels along the axis
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="analytics-chart" id="{escape(chart_id)}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(description)}</desc>',
        f'<line x1="0" y1="{HEIGHT - AXIS_SPACE}" x2="{WIDTH}" y2="{HEIGHT - AXIS_SPACE}" stroke="{TEXT_COLOUR}"/>',
    ]
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        height = plot_height * value / top
        x = index * slot + (slot - bar_width) / 2
        y = HEIGHT - AXIS_SPACE - height
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_width:.1f}" height="{height:.1f}" fill="{BAR_COLOUR}">'
            f"<title>{escape(label)}: {value}</title></rect>"
        )
        centre = index * slot + slot / 2
        if count <= 31 and value:
            parts.append(
                f'<text x="{centre:.1f}" y="{y - 3:.1f}" font-size="11" text-anchor="middle" '
                f'fill="{TEXT_COLOUR}">{value}</text>'
            )
        if index % label_every == 0:
            parts.append(
                f'<text x="{centre:.1f}" y="{HEIGHT - AXIS_SPACE + 16}" font-size="11" text-anchor="middle" '
                f'fill="{TEXT_COLOUR}">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped

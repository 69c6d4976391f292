"""``manage.py search_report --days 7``: the search analytics dashboard in the terminal."""

from __future__ import annotations

import unicodedata

from django.core.management.base import BaseCommand, CommandError

from analytics import selectors
from analytics.selectors import DateRange
from analytics.tables import TABLES, summary_rows, table_rows


def width(text: str) -> int:
    """Columns the text takes in a terminal: Chinese characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def aligned(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """Columns padded to their widest cell: text left, figures right."""
    widths = [max(width(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = []
    for number, row in enumerate([headers, *rows]):
        cells = []
        for index, cell in enumerate(row):
            pad = " " * (widths[index] - width(cell))
            cells.append(cell + pad if index == 0 or number == 0 else pad + cell)
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


class Command(BaseCommand):
    help = "Print the search analytics of the last days: the admin dashboard's figures and tables."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=7, help="The last N days, today included (default 7)")

    def handle(self, *args, days: int, **options):
        if days < 1:
            raise CommandError("--days must be 1 or more.")
        period = DateRange.last_days(days)
        report = selectors.report(period)
        out = [f"Search analytics from {period.first} to {period.last} ({period.days} days)", ""]
        out += aligned(("", ""), summary_rows(report["summary"]))[2:]
        for table in TABLES:
            rows = table_rows(table, report)
            out += ["", table.title, ""]
            out += aligned(table.headers, rows) if rows else ["(none)"]
        self.stdout.write("\n".join(out))

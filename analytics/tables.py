"""The report's tables as rows of text: one definition for the dashboard's tables, its CSV
exports and ``manage.py search_report``."""

from __future__ import annotations

from dataclasses import dataclass


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


@dataclass(frozen=True)
class Table:
    key: str  # the CSV export's name
    title: str
    headers: tuple[str, ...]
    source: str  # the report's entry
    cells: object  # row dict → tuple of cell texts


TABLES = (
    Table(
        "top",
        "Top queries",
        ("Query", "Searches", "Clicks", "Click-through"),
        "top",
        lambda r: (r["query"], str(r["searches"]), str(r["clicks"]), _percent(r["ctr"])),
    ),
    Table("zero", "Queries with no results", ("Query", "Searches"), "zero", lambda r: (r["query"], str(r["searches"]))),
    Table(
        "low_ctr",
        "Queries with low click-through",
        ("Query", "Searches", "Clicks", "Click-through"),
        "low_ctr",
        lambda r: (r["query"], str(r["searches"]), str(r["clicks"]), _percent(r["ctr"])),
    ),
    Table(
        "positions",
        "Clicks by result position",
        ("Position", "Clicks"),
        "positions",
        lambda r: (r["position"], str(r["clicks"])),
    ),
    Table(
        "days",
        "Searches per day",
        ("Day", "Searches", "No results"),
        "days",
        lambda r: (r["day"].isoformat(), str(r["searches"]), str(r["zero"])),
    ),
)
TABLES_BY_KEY = {table.key: table for table in TABLES}


def table_rows(table: Table, report: dict) -> list[tuple[str, ...]]:
    return [table.cells(row) for row in report[table.source]]


def summary_rows(summary: dict) -> list[tuple[str, str]]:
    def ms(value):
        return "–" if value is None else f"{value:.1f} ms"

    return [
        ("Searches", str(summary["searches"])),
        ("With no results", str(summary["zero"])),
        ("Clicks", str(summary["clicks"])),
        ("Searches with a click", _percent(summary["ctr"])),
        ("Latency p50", ms(summary["p50_ms"])),
        ("Latency p95", ms(summary["p95_ms"])),
    ]

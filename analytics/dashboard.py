"""The search analytics dashboard in the admin (staff): what shoppers searched for, what
found nothing, what they clicked, and how fast search answered; each table as CSV."""

from __future__ import annotations

import csv
from datetime import date
from urllib.parse import urlencode

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from analytics import charts, selectors
from analytics.selectors import DateRange
from analytics.tables import TABLES, TABLES_BY_KEY, summary_rows, table_rows

RANGES = (7, 30, 90)
DEFAULT_DAYS = 7
MAX_DAYS = 3650  # VITRINE_ANALYTICS_DAYS' maximum: nothing older is kept


def period_from(params) -> tuple[DateRange, str | None]:
    """``?days=7`` (the last 7 days, today included) or ``?from=…&to=…`` (ISO dates,
    inclusive); a range that cannot be read falls back to the last 7 days, with a note."""
    first, last = params.get("from"), params.get("to")
    if first or last:
        try:
            period = DateRange(date.fromisoformat(first), date.fromisoformat(last))
        except (TypeError, ValueError):
            return DateRange.last_days(DEFAULT_DAYS), "The dates could not be read (YYYY-MM-DD): the last 7 days."
        if period.first > period.last or period.days > MAX_DAYS:
            return DateRange.last_days(DEFAULT_DAYS), "That range is empty or too long: the last 7 days."
        return period, None
    days = params.get("days", str(DEFAULT_DAYS))
    if not days.isdigit() or not 1 <= int(days) <= MAX_DAYS:
        return DateRange.last_days(DEFAULT_DAYS), "That number of days could not be used: the last 7 days."
    return DateRange.last_days(int(days)), None


def search_dashboard(request: HttpRequest) -> HttpResponse:
    period, note = period_from(request.GET)
    report = selectors.report(period)
    export = request.GET.get("export")
    if export in TABLES_BY_KEY:
        return _csv(TABLES_BY_KEY[export], report)
    range_params = {"from": period.first.isoformat(), "to": period.last.isoformat()}
    # The links only for whoever may follow them.
    synonym_add = reverse("admin:embeddings_synonym_add") if request.user.has_perm("embeddings.add_synonym") else None
    rule_add = (
        reverse("admin:embeddings_merchandisingrule_add")
        if request.user.has_perm("embeddings.add_merchandisingrule")
        else None
    )
    zero = [
        {
            **row,
            "synonym_url": f"{synonym_add}?{urlencode({'terms': row['query'] + ', '})}" if synonym_add else None,
            "rule_url": f"{rule_add}?{urlencode({'name': row['query'], 'match': 'exact', 'phrase': row['query']})}"
            if rule_add
            else None,
        }
        for row in report["zero"]
    ]
    tables = [
        {
            "key": table.key,
            "title": table.title,
            "headers": table.headers,
            "rows": table_rows(table, report),
            "csv_url": "?" + urlencode({**range_params, "export": table.key}),
        }
        for table in TABLES
    ]
    days = report["days"]
    positions = report["positions"]
    context = {
        **admin.site.each_context(request),
        "title": "Search analytics",
        "period": period,
        "note": note,
        "ranges": [{"days": days_, "url": f"?days={days_}"} for days_ in RANGES],
        "summary": summary_rows(report["summary"]),
        "tables": {table["key"]: table for table in tables},
        "zero": zero,
        "days_chart": charts.bar_chart(
            "chart-days",
            "Searches per day",
            f"Searches each day from {period.first} to {period.last}; the table below has the figures.",
            [row["day"].strftime("%d %b") for row in days],
            [row["searches"] for row in days],
        ),
        "positions_chart": charts.bar_chart(
            "chart-positions",
            "Clicks by result position",
            "How many clicks each result position got (1 is the first result); the table below has the figures.",
            [row["position"] for row in positions],
            [row["clicks"] for row in positions],
        ),
    }
    return render(request, "admin/analytics/dashboard.html", context)


def _csv(table, report: dict) -> HttpResponse:
    period = report["period"]
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="search-{table.key}-{period.first}-{period.last}.csv"'
    writer = csv.writer(response)
    writer.writerow(table.headers)
    writer.writerows(table_rows(table, report))
    return response

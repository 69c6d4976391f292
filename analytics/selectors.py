"""Reading the analytics: the figures the dashboard and ``search_report`` show, each one
aggregate query over a date range (never a loop over all rows in Python)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Count, F, FloatField, Q, QuerySet
from django.db.models.functions import Cast, TruncDate
from django.utils import timezone

from analytics.models import SearchEvent, SearchRecord

TOP_QUERIES = 20
# A query needs this many searches before its click-through counts as low (one search
# without a click says nothing).
LOW_CTR_MIN_SEARCHES = 3
LOW_CTR_BELOW = 0.2
# Clicks at positions past this are counted together ("11+").
POSITIONS_SHOWN = 10


@dataclass(frozen=True)
class DateRange:
    """Whole days in the site's time zone, ``first`` to ``last`` inclusive."""

    first: date
    last: date

    @classmethod
    def last_days(cls, days: int, today: date | None = None) -> DateRange:
        today = today or timezone.localdate()
        return cls(today - timedelta(days=days - 1), today)

    @property
    def start(self) -> datetime:
        return timezone.make_aware(datetime.combine(self.first, time.min))

    @property
    def end(self) -> datetime:  # exclusive
        return timezone.make_aware(datetime.combine(self.last + timedelta(days=1), time.min))

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def searches_in(period: DateRange) -> QuerySet[SearchRecord]:
    return SearchRecord.objects.filter(created_at__gte=period.start, created_at__lt=period.end)


def clicks_in(period: DateRange) -> QuerySet[SearchEvent]:
    return SearchEvent.objects.filter(
        type=SearchEvent.Type.CLICK, search__created_at__gte=period.start, search__created_at__lt=period.end
    )


def summary(period: DateRange) -> dict:
    """Searches, how many found nothing, how many had a click, and the latency percentiles."""
    counts = searches_in(period).aggregate(
        searches=Count("pk", distinct=True),
        zero=Count("pk", filter=Q(zero_results=True), distinct=True),
        clicked=Count("pk", filter=Q(events__type=SearchEvent.Type.CLICK), distinct=True),
    )
    counts["clicks"] = clicks_in(period).count()
    counts["ctr"] = counts["clicked"] / counts["searches"] if counts["searches"] else None
    counts["p50_ms"] = latency_percentile(period, 0.50)
    counts["p95_ms"] = latency_percentile(period, 0.95)
    return counts


def latency_percentile(period: DateRange, share: float) -> float | None:
    """The nearest-rank percentile of the searches' latency: one ordered query with an
    offset (the database sorts; no row but the one wanted comes back)."""
    searches = searches_in(period)
    count = searches.count()
    if not count:
        return None
    rank = max(1, math.ceil(share * count))
    return searches.order_by("latency_ms").values_list("latency_ms", flat=True)[rank - 1]


def _with_clicks(rows: QuerySet) -> QuerySet:
    return rows.annotate(
        searches=Count("pk", distinct=True),
        clicked=Count("pk", filter=Q(events__type=SearchEvent.Type.CLICK), distinct=True),
        clicks=Count("events", filter=Q(events__type=SearchEvent.Type.CLICK)),
    ).annotate(ctr=Cast(F("clicked"), FloatField()) / Cast(F("searches"), FloatField()))


def top_queries(period: DateRange, limit: int = TOP_QUERIES) -> list[dict]:
    """The commonest words searched (photo searches have none), with their click-through:
    the share of their searches with at least one click."""
    rows = _with_clicks(searches_in(period).exclude(query="").values("query"))
    return list(rows.order_by("-searches", "query")[:limit])


def zero_result_queries(period: DateRange, limit: int = TOP_QUERIES) -> list[dict]:
    rows = searches_in(period).filter(zero_results=True).exclude(query="").values("query")
    return list(rows.annotate(searches=Count("pk")).order_by("-searches", "query")[:limit])


def low_ctr_queries(period: DateRange, limit: int = TOP_QUERIES) -> list[dict]:
    """Queries that found something, often enough to judge, that shoppers rarely clicked."""
    rows = _with_clicks(searches_in(period).filter(zero_results=False).exclude(query="").values("query"))
    rows = rows.filter(searches__gte=LOW_CTR_MIN_SEARCHES, ctr__lt=LOW_CTR_BELOW)
    return list(rows.order_by("ctr", "-searches", "query")[:limit])


def click_positions(period: DateRange) -> list[dict]:
    """Clicks per result position, 1 to POSITIONS_SHOWN, then the rest together."""
    counts = dict(
        clicks_in(period)
        .filter(position__isnull=False)
        .values("position")
        .annotate(n=Count("pk"))
        .values_list("position", "n")
    )
    rows = [{"position": str(p), "clicks": counts.get(p, 0)} for p in range(1, POSITIONS_SHOWN + 1)]
    rows.append(
        {"position": f"{POSITIONS_SHOWN + 1}+", "clicks": sum(n for p, n in counts.items() if p > POSITIONS_SHOWN)}
    )
    return rows


def searches_per_day(period: DateRange) -> list[dict]:
    """Every day of the range, with no search or some: searches and those that found nothing."""
    counts = {
        row["day"]: row
        for row in searches_in(period)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(searches=Count("pk"), zero=Count("pk", filter=Q(zero_results=True)))
    }
    days = []
    for offset in range(period.days):
        day = period.first + timedelta(days=offset)
        row = counts.get(day, {})
        days.append({"day": day, "searches": row.get("searches", 0), "zero": row.get("zero", 0)})
    return days


def report(period: DateRange) -> dict:
    return {
        "period": period,
        "summary": summary(period),
        "top": top_queries(period),
        "zero": zero_result_queries(period),
        "low_ctr": low_ctr_queries(period),
        "positions": click_positions(period),
        "days": searches_per_day(period),
    }

"""Popular past queries, for the search box's suggestions: what shoppers of a language
searched for recently and then clicked, never a query that found nothing.

A selector (it only reads). The search box asks it with every few letters typed, so each
call is one bounded query: the last ``SUGGEST_DAYS`` of searches (``created_at`` is
indexed), grouped by query, a ``LIMIT``; storefront.suggest caches its answers briefly.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, F, Max, Q
from django.utils import timezone

from analytics.models import SearchEvent, SearchRecord

# Recent enough to follow what shoppers want now, long enough for a small shop to have a
# few clicked queries; never longer than analytics keeps (VITRINE_ANALYTICS_DAYS).
SUGGEST_DAYS = 30


def popular_queries(prefix: str, *, language: str, limit: int = 8) -> list[str]:
    """Queries of ``language`` containing ``prefix`` (normalised as SearchRecord.query is:
    lower case, spaces collapsed) that shoppers clicked a result of, most clicks first,
    then most searches. A query whose latest search found nothing (the product is gone)
    is left out."""
    if not prefix:
        return []
    days = min(SUGGEST_DAYS, settings.VITRINE_ANALYTICS_DAYS)
    since = timezone.now() - timedelta(days=days)
    rows = (
        SearchRecord.objects.filter(
            created_at__gte=since,
            language=language,
            kind=SearchRecord.Kind.TEXT,
            query__contains=prefix,
        )
        .values("query")
        .annotate(
            clicks=Count("events", filter=Q(events__type=SearchEvent.Type.CLICK)),
            searches=Count("pk", distinct=True, filter=Q(zero_results=False)),
            last_found=Max("created_at", filter=Q(zero_results=False)),
            last_empty=Max("created_at", filter=Q(zero_results=True)),
        )
        .filter(Q(last_empty__isnull=True) | Q(last_empty__lt=F("last_found")), clicks__gt=0, searches__gt=0)
        .order_by("-clicks", "-searches", "query")
        .values_list("query", flat=True)[:limit]
    )
    return list(rows)

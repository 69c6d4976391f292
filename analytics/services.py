"""Writing analytics: the events after a search, and pruning old rows."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from analytics import recorder
from analytics.models import SearchEvent, SearchRecord
from catalog.models import Product

# A search id is random and handed only to whoever searched; still, one id cannot be used
# to write without limit (the page's click endpoint takes no token: see storefront.views).
MAX_EVENTS_PER_SEARCH = 100


class EventRefused(Exception):
    """``status`` and ``code`` for the faces' error shapes: 404 unknown search id or product
    would be a lie about the URL, so both are 422 (the request is well-formed, its ids are
    not known); 429 past MAX_EVENTS_PER_SEARCH; 503 with analytics off."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def search_find(search_id: str) -> SearchRecord | None:
    """The recorded search, also one still waiting in this process's buffer (written now)."""
    if not search_id:
        return None
    if recorder.search_buffered(search_id):
        recorder.flush()
    return SearchRecord.objects.filter(search_id=search_id).first()


def event_record(
    *,
    search_id: str,
    event_type: str,
    product: Product | None = None,
    product_id: int | None = None,
    external_id: str | None = None,
    position: int | None = None,
) -> SearchEvent:
    """Record a click, add to cart or purchase after the search ``search_id``. The product is
    named by ``product`` itself, its primary key (the page) or its external id (the API)."""
    if not settings.VITRINE_ANALYTICS:
        raise EventRefused(503, "analytics_off", "Search analytics are off here (VITRINE_ANALYTICS=0).")
    if event_type not in SearchEvent.Type.values:
        raise EventRefused(400, "invalid", f"type must be one of {', '.join(SearchEvent.Type.values)}.", "type")
    if position is not None and position < 1:
        raise EventRefused(400, "invalid", "position is 1-based: 1 or more.", "position")
    search = search_find(search_id)
    if search is None:
        message = f"No search with id {search_id[:40]!r} (or it was pruned)."
        raise EventRefused(422, "unknown_search", message, "search_id")
    if product is None:
        lookup = {"pk": product_id} if product_id is not None else {"external_id": external_id}
        product = Product.objects.filter(**lookup).first() if (product_id or external_id) else None
        if product is None:
            shown = product_id if product_id is not None else external_id
            raise EventRefused(422, "unknown_product", f"No product {shown!r}.", "product")
    if SearchEvent.objects.filter(search=search).count() >= MAX_EVENTS_PER_SEARCH:
        raise EventRefused(429, "too_many_events", f"A search takes at most {MAX_EVENTS_PER_SEARCH} events.")
    return SearchEvent.objects.create(search=search, type=event_type, product=product, position=position)


def analytics_prune(*, days: int | None = None) -> int:
    """Delete searches (and their events) older than ``days`` (VITRINE_ANALYTICS_DAYS); how
    many searches went."""
    days = settings.VITRINE_ANALYTICS_DAYS if days is None else days
    before = timezone.now() - timedelta(days=days)
    _, per_model = SearchRecord.objects.filter(created_at__lt=before).delete()
    # Events go with their search (CASCADE); none is older than its search.
    return per_model.get(SearchRecord._meta.label, 0)

"""Search analytics: one row per search, and the events that followed it.

Privacy by construction: no IP address, no user or session id, no cookie; a search is
known by a random ``search_id`` that the page and the API hand back so that clicks and
purchases can name it. Rows older than ``VITRINE_ANALYTICS_DAYS`` are pruned.
"""

from __future__ import annotations

import secrets

from django.db import models
from django.utils import timezone


def new_search_id() -> str:
    return secrets.token_hex(12)


class SearchRecord(models.Model):
    class Kind(models.TextChoices):
        TEXT = "text", "Words"
        PHOTO = "photo", "Photo"
        PHOTO_WORDS = "photo+words", "Photo and words"
        SIMILAR = "similar", "More like this"
        PRODUCTS = "products", "Liked products"
        IMAGINED = "imagined", "Imagined picture"
        IMAGINED_WORDS = "imagined+words", "Imagined picture and words"

    class Source(models.TextChoices):
        PAGE = "page", "Search page"
        API = "api", "API"

    search_id = models.CharField(max_length=32, unique=True, default=new_search_id)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Normalised words (lower case, spaces collapsed); empty for a photo alone; for an
    # imagined picture, the description it was drawn for.
    query = models.CharField(max_length=500, blank=True, db_index=True)
    language = models.CharField(max_length=16, blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    source = models.CharField(max_length=8, choices=Source.choices)
    result_count = models.PositiveIntegerField()
    zero_results = models.BooleanField(db_index=True)
    latency_ms = models.FloatField()
    # What answered: the embedding space and the engine's settings that change results.
    engine_version = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.query!r} ({self.result_count})"


class SearchEvent(models.Model):
    class Type(models.TextChoices):
        CLICK = "click", "Click"
        ADD_TO_CART = "add_to_cart", "Add to cart"
        PURCHASE = "purchase", "Purchase"

    search = models.ForeignKey(SearchRecord, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=16, choices=Type.choices)
    # The product may be deleted later: the event stays, counted without it.
    product = models.ForeignKey("catalog.Product", null=True, on_delete=models.SET_NULL, related_name="+")
    # 1-based position of the product in the results it was clicked from (clicks; may be null).
    position = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.type} on {self.search_id} at {self.position}"

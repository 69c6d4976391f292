"""Filters, facet counts and price buckets over the candidates of a search: each facet
counts what choosing a value would give, with every other filter applied."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from embeddings.search.types import Candidate, Facet, FacetFilters, FacetValue, PriceBucket


def _attribute_values(candidate: Candidate, key: str) -> list[str]:
    value = (candidate.attributes or {}).get(key)
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, (int, float)):
        return [str(value)]
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, (str, int, float)) and str(v)]
    return []


def matches(candidate: Candidate, filters: FacetFilters, skip: str = "") -> bool:
    """Whether the candidate passes every filter but ``skip`` (a facet's own)."""
    failed = failed_filters(candidate, filters)
    return not failed or failed == (skip,)


def failed_filters(candidate: Candidate, filters: FacetFilters) -> tuple[str, ...]:
    """The names of the filters a candidate fails (as ``matches``' ``skip`` names them)."""
    failed = []
    if filters.categories and candidate.category not in filters.categories:
        failed.append("category")
    if filters.brands and candidate.brand not in filters.brands:
        failed.append("brand")
    if filters.price_min is not None or filters.price_max is not None:
        price = candidate.price
        if (
            price is None
            or (filters.price_min is not None and price < filters.price_min)
            or (filters.price_max is not None and price > filters.price_max)
        ):
            failed.append("price")
    for key, values in filters.attributes:
        if values and not set(values) & set(_attribute_values(candidate, key)):
            failed.append(f"attr.{key}")
    return tuple(failed)


def facets_count(
    universe: list[Candidate],
    filters: FacetFilters,
    attribute_keys: list[str],
    failures: list[tuple[str, ...]] | None = None,
) -> list[Facet]:
    """Counts per value over the results that match every *other* active filter, so a
    shopper sees how many results each choice would give (chosen values always listed).
    ``failures``: ``failed_filters`` of each candidate, if already known."""
    if failures is None:
        failures = [failed_filters(candidate, filters) for candidate in universe]
    chosen_attributes = dict(filters.attributes)
    dimensions = [
        ("category", "Category", lambda c: [c.category] if c.category else [], filters.categories),
        ("brand", "Brand", lambda c: [c.brand] if c.brand else [], filters.brands),
    ]
    for key in attribute_keys:
        dimensions.append(
            (
                f"attr.{key}",
                key.replace("_", " ").capitalize(),
                lambda c, key=key: _attribute_values(c, key),
                chosen_attributes.get(key, ()),
            )
        )
    facets = []
    for name, label, values_of, chosen in dimensions:
        counts: dict[str, int] = {}
        for candidate, failed in zip(universe, failures, strict=True):
            if not failed or failed == (name,):  # matches every other filter
                for value in set(values_of(candidate)):
                    counts[value] = counts.get(value, 0) + 1
        for value in chosen:
            counts.setdefault(value, 0)
        if not counts:
            continue
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        facets.append(Facet(name=name, label=label, values=[FacetValue(v, n, v in chosen) for v, n in ordered]))
    return facets


def price_buckets(candidates: list[Candidate]) -> list[PriceBucket]:
    """Up to four price ranges with round edges, each holding a similar share of results."""
    prices = sorted(c.price for c in candidates if c.price is not None)
    if len(prices) < 4:
        return []
    edges: list[Decimal] = []
    for share in (0.25, 0.5, 0.75):
        edge = _round_price(prices[int(len(prices) * share)])
        if edge > prices[0] and edge < prices[-1] and (not edges or edge > edges[-1]):
            edges.append(edge)
    if not edges:
        return []
    bounds = [(None, edges[0]), *zip(edges, edges[1:], strict=False), (edges[-1], None)]
    buckets = []
    for low, high in bounds:
        count = sum(1 for p in prices if (low is None or p >= low) and (high is None or p < high))
        if count:
            buckets.append(PriceBucket(low=low, high=high, count=count))
    return buckets


def _round_price(price: Decimal) -> Decimal:
    """A price edge a person would pick: the price rounded down to half its power of ten
    (37.40 → 35, 123 → 100, 8.70 → 8)."""
    value = float(price)
    step = max(1.0, 10 ** int(np.floor(np.log10(max(value, 1.0)))) / 2)
    return Decimal(int(value // step * step))

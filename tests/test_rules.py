"""Merchandising rules on the small demo shop: each kind changes the order exactly as
embeddings/search/rules.py documents, through the engine, the API and the shoppers' page;
what does nothing (disabled, out of its window, another sort) does nothing."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from embeddings.models import MerchandisingRule, RuleBoost, RuleHide, RulePin
from embeddings.search import FacetFilters, SearchQuery, catalog_search
from embeddings.search.rules import Boost, query_normalise
from embeddings.search.types import Candidate

pytestmark = pytest.mark.django_db(transaction=True)


def rule_make(*, match="exact", phrase="mug", pins=(), hides=(), boosts=(), name="rule", **fields):
    """A saved rule (saving tells the search, as the admin's saving does)."""
    rule = MerchandisingRule.objects.create(name=name, match=match, phrase=phrase, **fields)
    for position, product in pins:
        RulePin.objects.create(rule=rule, product=product, position=position)
    for product in hides:
        RuleHide.objects.create(rule=rule, product=product)
    for boost in boosts:
        RuleBoost.objects.create(rule=rule, **boost)
    return rule


def ids(page) -> list[int]:
    return [hit.product.pk for hit in page.hits]


def search(text="mug", **kwargs):
    return catalog_search(SearchQuery(text=text, limit=100, **kwargs))


def test_a_pin_puts_a_product_the_query_did_not_find_first_and_counts_it(small_shop):
    before = search("mugs")
    lamp = next(p for p in small_shop if p.attributes["kind"] == "lamp" and p.pk not in ids(before))
    rule = rule_make(phrase="mugs", pins=[(1, lamp)], name="Lamp for mugs")
    page = search("Mugs ")  # normalised as the rule's phrase is: case folded, spaces collapsed
    assert ids(page) == [lamp.pk, *ids(before)]
    assert page.total == before.total + 1
    assert page.hits[0].explain["pinned"] == 1
    assert page.hits[0].explain["rules"] == [{"id": rule.pk, "name": "Lamp for mugs"}]
    assert page.rules_fired == ({"id": rule.pk, "name": "Lamp for mugs", "skipped_pins": []},)
    assert search("mug").rules_fired == ()  # exact: "mug" is not "mugs"


def test_a_pin_moves_a_listed_product_to_its_position_and_keeps_the_others_order(small_shop):
    before = ids(search())
    assert len(before) >= 4
    moved = before[-1]
    rule_make(pins=[(2, next(p for p in small_shop if p.pk == moved))])
    assert ids(search()) == [before[0], moved, *before[1:-1]]


def test_pins_on_page_two_land_on_the_whole_lists_position(small_shop):
    before = ids(search())
    target = next(p for p in small_shop if p.pk == before[0])
    rule_make(pins=[(3, target)])
    second_page = catalog_search(SearchQuery(text="mug", limit=2, offset=2))
    assert ids(second_page)[0] == target.pk


def test_a_pinned_product_that_is_inactive_is_skipped_and_the_reason_said(small_shop):
    before = ids(search())
    lamp = next(p for p in small_shop if p.attributes["kind"] == "lamp" and p.pk not in before)
    lamp.is_active = False
    lamp.save(update_fields=["is_active"])
    rule = rule_make(pins=[(1, lamp)])
    page = search()
    assert ids(page) == before
    assert page.rules_fired[0]["skipped_pins"] == [{"product_id": lamp.pk, "position": 1, "reason": "inactive"}]
    assert rule.pk == page.rules_fired[0]["id"]


def test_a_hidden_product_is_in_no_hit_total_or_facet_count_even_when_pinned(small_shop):
    before = search()
    hidden = next(p for p in small_shop if p.pk == ids(before)[0])
    rule_make(hides=[hidden])
    pinning = rule_make(match="contains", pins=[(1, hidden)])
    page = search()
    assert ids(page) == ids(before)[1:]
    assert page.total == before.total - 1
    skipped = {"product_id": hidden.pk, "position": 1, "reason": "hidden by a rule"}
    assert {"id": pinning.pk, "name": "rule", "skipped_pins": [skipped]} in page.rules_fired
    category = {f.name: f for f in before.facets}["category"]
    counted = {v.value: v.count for v in category.values}
    after = {v.value: v.count for v in {f.name: f for f in page.facets}["category"].values}
    assert after.get(hidden.category, 0) == counted[hidden.category] - 1


@pytest.mark.parametrize("factor", [100.0, 0.01])
def test_a_brand_boost_multiplies_the_fused_score_and_reorders_by_it(small_shop, factor):
    before = search("red")
    brands = [hit.product.brand for hit in before.hits]
    brand = max(set(brands), key=brands.count)
    rule_make(match="contains", phrase="red", boosts=[{"field": "brand", "value": brand.upper(), "factor": factor}])
    page = search("red")
    assert sorted(ids(page)) == sorted(ids(before)), "boosts reorder; they do not change what is listed"
    for hit in page.hits:
        expected = factor if hit.product.brand == brand else 1.0
        assert hit.explain["factor"] == expected
        assert hit.explain["final"] == pytest.approx(hit.explain["fused"] * expected, rel=1e-4, abs=2e-6)
    finals = [hit.explain["final"] for hit in page.hits]
    assert finals == sorted(finals, reverse=True)
    of_brand = [hit.product.brand == brand for hit in page.hits]
    # ×100 lifts every product of the brand above the others; ×0.01 buries them below.
    assert of_brand == sorted(of_brand, reverse=factor > 1)
    assert of_brand != [hit.product.brand == brand for hit in before.hits]


def test_attribute_and_price_boosts_select_their_products(small_shop):
    rule_make(
        match="any",
        phrase="",
        boosts=[
            {"field": "attribute", "key": "colour", "value": "Blue", "factor": 50.0},
            {"field": "price", "low": Decimal("0"), "high": Decimal("15"), "factor": 2.0},
        ],
    )
    page = search("striped", relevant_only=False)
    for hit in page.hits:
        expected = (50.0 if hit.product.attributes["colour"] == "blue" else 1.0) * (
            2.0 if hit.product.price < 15 else 1.0
        )
        assert hit.explain["factor"] == pytest.approx(expected)
    assert page.hits[0].product.attributes["colour"] == "blue"


def test_a_boost_reads_true_and_numbers_in_the_shops_own_fields():
    candidate = Candidate(product_id=1, image_id=1, score=0.3, rank_score=0.3, attributes={"in_stock": True})
    other = Candidate(product_id=2, image_id=2, score=0.3, rank_score=0.3, attributes={"in_stock": "no", "margin": 0.4})
    assert Boost(field="attribute", key="in_stock", factor=2).selects(candidate)
    assert not Boost(field="attribute", key="in_stock", factor=2).selects(other)
    margin = Boost(field="attribute", key="margin", low=Decimal("0.3"), high=Decimal("0.5"), factor=2)
    assert margin.selects(other) and not margin.selects(candidate)
    assert Boost(field="attribute", key="in_stock", value="true", factor=2).selects(candidate)


def test_a_category_rule_fires_when_the_words_name_the_category_or_the_shopper_filters_on_it(small_shop):
    rule = rule_make(match="category", phrase="Kitchen", boosts=[{"field": "brand", "value": "Kito", "factor": 2}])
    assert "kitchen" in [c.casefold() for c in search("kitchen").understood["categories"]]
    assert [r["id"] for r in search("kitchen").rules_fired] == [rule.pk]
    assert [r["id"] for r in search("red", filters=FacetFilters(categories=("kitchen",))).rules_fired] == [rule.pk]
    assert search("red").rules_fired == ()


def test_a_disabled_rule_and_one_outside_its_window_do_nothing(small_shop):
    before = search()
    first = next(p for p in small_shop if p.pk == ids(before)[0])
    now = timezone.now()
    rule_make(hides=[first], is_enabled=False)
    rule_make(hides=[first], starts_at=now + timedelta(days=1))
    rule_make(hides=[first], starts_at=now - timedelta(days=2), ends_at=now - timedelta(days=1))
    page = search()
    assert ids(page) == ids(before) and page.rules_fired == ()
    rule_make(hides=[first], starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=1))
    assert first.pk not in ids(search())


def test_sorted_by_price_only_hiding_applies(small_shop):
    before = search(sort="price")
    first = next(p for p in small_shop if p.pk == ids(before)[0])
    last = next(p for p in small_shop if p.pk == ids(before)[-1])
    rule_make(pins=[(1, last)], hides=[first], boosts=[{"field": "brand", "value": last.brand, "factor": 100}])
    assert ids(search(sort="price")) == ids(before)[1:]


def test_rules_for_every_search_reach_more_like_this(small_shop):
    product = small_shop[0]
    similar = SearchQuery(like_product_id=product.pk, limit=10, relevant_only=False)
    before = ids(catalog_search(similar))
    outsider = next(p for p in small_shop if p.pk not in before and p.pk != product.pk)
    rule_make(match="any", phrase="", pins=[(1, outsider)], hides=[next(p for p in small_shop if p.pk == before[0])])
    after = ids(catalog_search(similar))
    assert after[0] == outsider.pk and before[0] not in after and after[1] == before[1]


def test_the_api_and_the_page_apply_rules_and_the_api_explains_them(small_shop, search_api):
    before = ids(search())
    lamp = next(p for p in small_shop if p.attributes["kind"] == "lamp" and p.pk not in before)
    rule = rule_make(pins=[(1, lamp)], name="Lamp first")
    body = search_api.post("/api/v1/search", {"text": "MUG", "explain": True}).json()
    assert [r["id"] for r in body["results"]] == [lamp.pk, *before[: len(body["results"]) - 1]]
    assert body["rules_fired"] == [{"id": rule.pk, "name": "Lamp first", "skipped_pins": []}]
    assert body["results"][0]["explain"]["pinned"] == 1
    assert set(body["results"][0]["explain"]) == {
        "keyword", "vector", "fused", "relevant", "final", "factor", "pinned", "rules"
    }  # fmt: skip
    plain = search_api.post("/api/v1/search", {"text": "mug"}).json()
    assert "rules_fired" not in plain and plain["results"][0]["id"] == lamp.pk
    html = Client().get("/", {"q": "mug"}).content.decode()
    titles = re.findall(r'<span class="title">([^<]+)</span>', html)
    assert titles[0] == lamp.title


def test_rules_are_read_once_per_few_seconds_not_per_search_or_rule(small_shop):
    for number in range(10):
        rule_make(phrase=f"word{number}", name=f"rule {number}", boosts=[{"field": "brand", "value": "Kito"}])
    search()  # reads the rules once (four queries, whatever their number)
    with CaptureQueriesContext(connection) as queries:
        search()
    assert not [q for q in queries.captured_queries if "merchandising" in q["sql"] or "rule" in q["sql"]]


def test_query_normalisation_folds_case_width_spaces_and_traditional_chinese():
    assert query_normalise("  Mugs  ") == query_normalise("mugs") == "mugs"
    assert query_normalise("ＭＵＧ") == "mug"
    assert query_normalise("條紋 杯子") == "条纹 杯子"


def rule_of_kind(kind: str, shop, before: list[int]):
    """A rule of each kind for "mug", with the effect the engine's tests check."""
    by_id = {p.pk: p for p in shop}
    if kind == "pin":
        return rule_make(pins=[(1, by_id[before[-1]])])
    if kind == "hide":
        return rule_make(hides=[by_id[before[0]]])
    brand = by_id[before[-1]].brand if kind == "boost" else by_id[before[0]].brand
    return rule_make(boosts=[{"field": "brand", "value": brand, "factor": 100.0 if kind == "boost" else 0.01}])


@pytest.mark.parametrize("kind", ["pin", "hide", "boost", "bury"])
def test_each_rule_kind_orders_the_api_and_the_page_as_the_engine_does(small_shop, search_api, kind):
    before = ids(search())
    rule = rule_of_kind(kind, small_shop, before)
    expected = search()
    order = ids(expected)
    brand_of = {p.pk: p.brand for p in small_shop}
    if kind == "pin":
        assert order == [before[-1], *before[:-1]]
    elif kind == "hide":
        assert order == before[1:]
    else:  # ×100 lifts the brand above every other (×0.01: below), each side in its order
        brand = brand_of[before[-1]] if kind == "boost" else brand_of[before[0]]
        of_brand = [p for p in before if brand_of[p] == brand]
        others = [p for p in before if brand_of[p] != brand]
        assert order == (of_brand + others if kind == "boost" else others + of_brand)
    assert order != before
    body = search_api.post("/api/v1/search", {"text": "mug", "limit": 100, "explain": True}).json()
    assert [r["id"] for r in body["results"]] == order
    assert [r["id"] for r in body["rules_fired"]] == [rule.pk]
    html = Client().get("/", {"q": "mug"}).content.decode()
    assert re.findall(r'<span class="title">([^<]+)</span>', html) == [hit.product.title for hit in expected.hits]
    rule.is_enabled = False
    rule.save()
    assert ids(search()) == before
    assert [r["id"] for r in search_api.post("/api/v1/search", {"text": "mug", "limit": 100}).json()["results"]] == (
        before
    )


def test_a_change_told_by_another_process_is_seen_at_the_next_version_check(small_shop, monkeypatch):
    from embeddings.search import rules
    from searchsite.caching import cache_call

    rule = MerchandisingRule.objects.create(name="Mugs", match="exact", phrase="mug")  # this process: told at once
    assert [r.name for r in rules.rules_saved()] == ["Mugs"]
    # Another process disables it: the row changes (an update sends no notice here) and it
    # sets the shared version, as its save would.
    MerchandisingRule.objects.filter(pk=rule.pk).update(is_enabled=False)
    cache_call("set", None, rules.VERSION_KEY, "changed elsewhere", None)
    assert [r.name for r in rules.rules_saved()] == ["Mugs"]  # not asked again within the second
    monkeypatch.setattr(rules, "_checked_at", rules._checked_at - rules.VERSION_CHECK_SECONDS)
    assert rules.rules_saved() == ()  # the next check sees the new version and re-reads

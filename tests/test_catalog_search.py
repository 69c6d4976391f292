"""The shoppers' search service on a small demo shop, with the shipped demo model:
relevance cutoff, facet counts, sorting, paging, refinement, photo + words."""

from __future__ import annotations

import numpy as np
import pytest

from catalog import services
from catalog.demo import COLOURS, Attributes, demo_attribute_render
from catalog.models import Product
from embeddings.model import get_encoder
from embeddings.models import RelevanceCutoff
from embeddings.relevance import cutoffs_calibrate, cutoffs_get
from embeddings.search import FacetFilters, SearchError, SearchQuery, catalog_search
from tests.conftest import SMALL_SHOP

pytestmark = pytest.mark.django_db(transaction=True)

SHOP_SIZE = SMALL_SHOP["products"]


@pytest.fixture
def shop(small_shop):
    return small_shop


def all_results(**kwargs) -> list[Product]:
    """Every product the query lists, following the pages."""
    products, offset = [], 0
    while True:
        page = catalog_search(SearchQuery(limit=100, offset=offset, **kwargs))
        products += [hit.product for hit in page.hits]
        offset += 100
        if offset >= page.total:
            return products


def test_loading_the_shop_calibrates_cutoffs_between_matched_and_mismatched_scores(shop):
    row = RelevanceCutoff.objects.get(embedding_space=get_encoder().space.id)
    text = row.stats["text"]
    assert row.sample_products == SHOP_SIZE
    assert text["mismatched_p99"] < row.text_auto <= text["matched_p50"]
    assert row.stats["image"]["mismatched_p50"] < row.image_auto <= row.stats["image"]["matched_p50"]
    assert cutoffs_get(get_encoder().space).source == "calibrated"


def test_the_cutoff_hides_unrelated_products_behind_loosely_related(shop):
    target = shop[5]
    page = catalog_search(SearchQuery(text=target.title))
    assert page.hits[0].product == target
    assert page.cutoff == RelevanceCutoff.objects.get().text_auto
    assert all(hit.score >= page.cutoff for hit in page.hits)
    assert 1 <= page.total < SHOP_SIZE / 4
    assert page.total + page.loosely_related == SHOP_SIZE
    loose = catalog_search(SearchQuery(text=target.title, relevant_only=False))
    assert loose.total == SHOP_SIZE and loose.loosely_related == 0


def test_relevant_results_of_a_colour_word_mostly_have_that_colour(shop):
    colour = shop[0].attributes["colour"]
    products = all_results(text=COLOURS[colour][0])
    assert products, "a colour in the shop finds something"
    share = np.mean([p.attributes["colour"] == colour for p in products])
    assert share >= 0.8


def test_cutoffs_from_settings_and_admin_override_the_calibrated_ones(shop, settings):
    space = get_encoder().space
    row = RelevanceCutoff.objects.get()
    row.text_override = -1.0
    row.save()
    assert catalog_search(SearchQuery(text="mug")).total == SHOP_SIZE
    assert cutoffs_get(space).source == "admin"
    settings.VITRINE_TEXT_CUTOFF = 0.99
    page = catalog_search(SearchQuery(text="mug", limit=100))
    # No vector score reaches 0.99: only the keyword evidence (the shop's mugs) is shown.
    mugs = {p.pk for p in shop if p.attributes["kind"] == "mug"}
    assert mugs and {hit.product.pk for hit in page.hits} == mugs
    assert page.loosely_related == SHOP_SIZE - len(mugs)
    assert catalog_search(SearchQuery(text="a thing")).total == 0  # no keyword evidence: nothing
    assert cutoffs_get(space).source == "settings"


def test_too_few_products_give_no_cutoff(db, settings):
    from catalog import services
    from tests import images

    for number in range(3):
        product = services.product_upsert(external_id=f"p{number}", title=f"Thing {number}").product
        services.image_create(product=product, content=images.noise_jpeg(number))  # indexed on commit
    assert cutoffs_calibrate() is None
    page = catalog_search(SearchQuery(text="thing"))
    assert page.cutoff is None and page.total == 3 and page.loosely_related == 0


def test_facet_counts_are_what_choosing_the_value_gives(shop):
    query = {"text": "a thing", "relevant_only": False}
    page = catalog_search(SearchQuery(**query))
    facets = {facet.name: facet for facet in page.facets}
    assert {"category", "brand", "attr.colour", "attr.pattern"} <= set(facets)
    for name, field in (("category", "categories"), ("brand", "brands")):
        for value in facets[name].values:
            chosen = catalog_search(SearchQuery(**query, filters=FacetFilters(**{field: (value.value,)})))
            assert chosen.total == value.count, (name, value)
    colours = facets["attr.colour"].values
    assert sum(v.count for v in colours) == SHOP_SIZE
    first, second = colours[0], colours[1]
    one = catalog_search(SearchQuery(**query, filters=FacetFilters(attributes=(("colour", (first.value,)),))))
    assert one.total == first.count
    # Within a facet, values add up (either colour); other facets count within the choice.
    both = FacetFilters(attributes=(("colour", (first.value, second.value)),))
    two = catalog_search(SearchQuery(**query, filters=both))
    assert two.total == first.count + second.count
    one_facets = {facet.name: facet for facet in one.facets}
    assert {v.value: v.count for v in one_facets["attr.colour"].values} == {v.value: v.count for v in colours}
    assert sum(v.count for v in one_facets["category"].values) == one.total
    assert [v.selected for v in one_facets["attr.colour"].values if v.value == first.value] == [True]


def test_a_price_range_filters_and_buckets_count_within_the_other_filters(shop):
    page = catalog_search(SearchQuery(text="a thing", relevant_only=False))
    assert page.price_buckets and sum(b.count for b in page.price_buckets) == SHOP_SIZE
    bucket = page.price_buckets[1]
    ranged = all_results(
        text="a thing", relevant_only=False, filters=FacetFilters(price_min=bucket.low, price_max=bucket.high)
    )
    assert ranged and all(bucket.low <= p.price <= bucket.high for p in ranged)
    expected = Product.objects.filter(price__gte=bucket.low, price__lte=bucket.high).count()
    assert len(ranged) == expected


def test_sorting_by_price_and_newest(shop):
    cheap_first = all_results(text="a thing", relevant_only=False, sort="price")
    assert [p.price for p in cheap_first] == sorted(p.price for p in shop)
    dear_first = all_results(text="a thing", relevant_only=False, sort="-price")
    assert [p.price for p in dear_first] == sorted((p.price for p in shop), reverse=True)
    assert [p.pk for p in all_results(text="a thing", relevant_only=False, sort="newest")] == sorted(
        (p.pk for p in shop), reverse=True
    )
    with shop[3].images.first().file.open("rb") as handle:
        photo = handle.read()
    added = services.product_upsert(external_id="added-last", title="Red chair, again").product
    services.image_create(product=added, content=photo)
    newest = all_results(text="a thing", relevant_only=False, sort="newest")
    assert newest[0] == added
    with pytest.raises(SearchError):
        catalog_search(SearchQuery(text="a thing", sort="cheapest"))


def test_pages_partition_the_results(shop):
    everything = all_results(text="a thing", relevant_only=False)
    pages = []
    for offset in range(0, SHOP_SIZE, 7):
        pages += [
            hit.product
            for hit in catalog_search(SearchQuery(text="a thing", relevant_only=False, limit=7, offset=offset)).hits
        ]
    assert pages == everything and len(set(p.pk for p in pages)) == SHOP_SIZE


def colour_ranks(products: list[Product], colour: str) -> float:
    return float(np.mean([rank for rank, p in enumerate(products) if p.attributes["colour"] == colour]))


def test_like_moves_similar_products_up_and_not_this_hides_and_moves_them_down(shop):
    kind = shop[0].attributes["kind"]
    base = all_results(text=kind, relevant_only=False)
    liked = next(p for p in base[5:] if p.attributes["kind"] == kind)
    colour = liked.attributes["colour"]
    after_like = all_results(text=kind, relevant_only=False, positive_ids=(liked.pk,))
    assert colour_ranks(after_like, colour) < colour_ranks(base, colour)
    assert set(after_like) == set(base), "refining reorders; it does not change what is relevant"

    rejected = base[0]
    after_not = all_results(text=kind, relevant_only=False, negative_ids=(rejected.pk,))
    assert rejected not in after_not
    others = [p for p in base if p != rejected]
    assert colour_ranks(after_not, rejected.attributes["colour"]) > colour_ranks(others, rejected.attributes["colour"])
    with pytest.raises(SearchError):
        catalog_search(SearchQuery(text=kind, positive_ids=(liked.pk,), negative_ids=(liked.pk,)))


def test_more_like_this_leaves_the_product_out_and_finds_its_look_alikes(shop):
    target = shop[0]
    page = catalog_search(SearchQuery(like_product_id=target.pk, relevant_only=False, limit=5))
    assert target not in [hit.product for hit in page.hits]
    best = page.hits[0].product.attributes
    shared = sum(best[key] == target.attributes[key] for key in ("kind", "colour", "pattern"))
    assert shared >= 2


def test_a_photo_with_words_finds_the_pictured_kind_in_the_asked_colour(shop):
    target = shop[0].attributes
    other_colour = next(c for c in COLOURS if c != target["colour"])
    photo = demo_attribute_render(
        Attributes(target["kind"], target["colour"], target["pattern"]), stream="test", index=1
    )
    photo_only = catalog_search(SearchQuery(image=photo, relevant_only=False, limit=1))
    assert photo_only.hits[0].product.attributes["kind"] == target["kind"]
    combined = catalog_search(SearchQuery(image=photo, text=COLOURS[other_colour][0]))
    assert combined.kind == "image+text"
    relevant = [hit.product.attributes for hit in combined.hits]
    assert relevant, "something in the asked colour resembles the photo"
    assert all(a["colour"] == other_colour for a in relevant), relevant
    resembling = [a for a in relevant if a["kind"] == target["kind"] or a["pattern"] == target["pattern"]]
    assert relevant[0] in resembling, relevant


def test_bad_queries_are_refused(shop):
    for query in (
        SearchQuery(),
        SearchQuery(text="mug", like_product_id=shop[0].pk),
        SearchQuery(text="mug", limit=0),
        SearchQuery(text="mug", offset=-1),
        SearchQuery(text="mug", positive_ids=tuple(range(1, 30))),
    ):
        with pytest.raises(SearchError):
            catalog_search(query)
    assert catalog_search(SearchQuery(text="mug", filters=FacetFilters(brands=("No such brand",)))).total == 0


def test_filters_reach_products_beyond_the_nearest_candidates(shop, settings):
    """When the nearest candidates were all kept, a filter asks the index for the products it
    matches, wherever they are; the facet counts then say they are not exact."""
    settings.VITRINE_SEARCH_CANDIDATES = 10
    everything = catalog_search(SearchQuery(text="a thing", relevant_only=False, limit=50))
    nearest = {hit.product.pk for hit in everything.hits}
    assert len(nearest) == 10 and everything.total_is_capped
    by_brand: dict[str, set[int]] = {}
    for product in shop:
        by_brand.setdefault(product.brand, set()).add(product.pk)
    brand, expected = next((b, pks) for b, pks in sorted(by_brand.items()) if len(pks) < 10 and pks - nearest)

    page = catalog_search(
        SearchQuery(text="a thing", relevant_only=False, filters=FacetFilters(brands=(brand,)), limit=50)
    )

    assert {hit.product.pk for hit in page.hits} == expected
    assert page.total == len(expected) and not page.total_is_capped
    assert not page.facet_counts_exact

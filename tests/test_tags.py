"""Zero-shot tags on a small demo shop: suggestions mostly right, review in the admin, an
accepted tag lands in the product's attributes (and so in the search page's facets)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from catalog.models import Product
from embeddings.index import get_index
from embeddings.model import get_encoder
from embeddings.models import TagFacet, TagSuggestion
from embeddings.search import FacetFilters, SearchQuery, catalog_search
from embeddings.tagging import tags_suggest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop(small_shop):
    return small_shop


def test_the_demo_taxonomy_is_created_with_chinese_names(shop):
    assert set(TagFacet.objects.values_list("name", flat=True)) == {"colour", "pattern", "kind"}
    assert TagFacet.objects.get(name="colour").values.get(value="red").value_zh == "红色"


def test_suggestions_on_the_demo_shop_are_mostly_right(shop):
    report = tags_suggest()
    assert report.products == len(shop)
    suggestions = list(TagSuggestion.objects.select_related("product", "value__facet"))
    assert len(suggestions) >= len(shop) * 2, "most products get most facets"
    right = [s for s in suggestions if s.product.attributes[s.value.facet.name] == s.value.value]
    assert len(right) / len(suggestions) >= 0.9
    again = tags_suggest()
    assert again.suggested == 0, "facets already suggested are not suggested again"


def test_accepting_writes_the_tag_into_the_product_and_its_facets(shop):
    product = shop[0]
    product.attributes = {"kind": product.attributes["kind"]}  # as if it had no colour
    product.save()
    tags_suggest([product.pk])
    suggestion = TagSuggestion.objects.get(product=product, value__facet__name="colour")
    admin_user = User.objects.create_superuser("admin", password="pw")
    client = Client()
    client.force_login(admin_user)
    listing = client.get("/admin/embeddings/tagsuggestion/", {"state": "suggested"}).content.decode()
    assert suggestion.value.value in listing
    client.post("/admin/embeddings/tagsuggestion/", {"action": "accept", "_selected_action": [suggestion.pk]})
    product.refresh_from_db()
    suggestion.refresh_from_db()
    assert suggestion.state == "accepted"
    assert product.attributes["colour"] == suggestion.value.value
    index = get_index()
    image = product.images.first()
    payload = index.payloads(get_encoder().space, [image.pk])[image.pk]
    assert payload["attr_colour"] == suggestion.value.value, "the index payload has the accepted tag"
    page = catalog_search(
        SearchQuery(
            text=product.title,
            relevant_only=False,
            filters=FacetFilters(attributes=(("colour", (product.attributes["colour"],)),)),
        )
    )
    assert product in [hit.product for hit in page.hits]


def test_rejecting_leaves_the_product_alone(shop):
    product = shop[1]
    before = dict(product.attributes)
    tags_suggest([product.pk])
    admin_user = User.objects.create_superuser("admin", password="pw")
    client = Client()
    client.force_login(admin_user)
    ids = list(TagSuggestion.objects.filter(product=product).values_list("pk", flat=True))
    client.post("/admin/embeddings/tagsuggestion/", {"action": "reject", "_selected_action": ids})
    product.refresh_from_db()
    assert product.attributes == before
    assert set(TagSuggestion.objects.filter(product=product).values_list("state", flat=True)) == {"rejected"}


def test_rejecting_an_accepted_tag_takes_it_out_of_the_product(shop):
    from embeddings.tagging import tags_decide

    product = shop[2]
    product.attributes = {"kind": product.attributes["kind"]}
    product.save()
    tags_suggest([product.pk])
    suggestion = TagSuggestion.objects.filter(product=product, value__facet__name="colour")
    tags_decide(suggestion, accept=True)
    assert "colour" in Product.objects.get(pk=product.pk).attributes
    tags_decide(TagSuggestion.objects.filter(pk=suggestion.get().pk), accept=False)
    assert "colour" not in Product.objects.get(pk=product.pk).attributes


def test_a_clearer_choice_gets_a_larger_margin_where_the_probability_is_saturated():
    import numpy as np

    from embeddings.tagging import facet_scores

    values = np.eye(3, 16)  # three values' text vectors, orthogonal
    clear = values[0] + 0.1 * values[1]
    close = values[0] + 0.9 * values[1]
    products = np.stack([v / np.linalg.norm(v) for v in (clear, close)])

    clear_score, close_score = facet_scores(products, values)

    assert clear_score.best == close_score.best == 0
    assert clear_score.margin > close_score.margin > 0
    assert clear_score.margin == pytest.approx((1 - 0.1) / np.linalg.norm(clear))
    assert clear_score.confidence >= close_score.confidence


def test_suggestions_keep_their_margin_and_the_review_list_shows_close_calls_first(shop):
    tags_suggest()
    suggestions = list(TagSuggestion.objects.select_related("product", "value__facet"))
    margins = [s.margin for s in suggestions]
    assert all(m is not None and 0 < m < 1 for m in margins)
    assert len({round(c, 4) for c in (s.confidence for s in suggestions)}) < len(suggestions) / 4, (
        "the softmax is saturated on the demo model: this is why the margin is shown"
    )
    assert len(set(margins)) > len(suggestions) * 0.9, "the margin tells the suggestions apart"
    right = sorted(s.margin for s in suggestions if s.product.attributes[s.value.facet.name] == s.value.value)
    wrong = [s.margin for s in suggestions if s.product.attributes[s.value.facet.name] != s.value.value]
    assert all(m < right[len(right) // 2] for m in wrong), "the mistakes are among the less clear suggestions"

    admin_user = User.objects.create_superuser("admin", password="pw")
    client = Client()
    client.force_login(admin_user)
    listing = client.get("/admin/embeddings/tagsuggestion/")
    shown = list(listing.context["cl"].result_list)
    assert [s.margin for s in shown] == sorted(s.margin for s in shown), "close calls first"
    html = listing.content.decode()
    assert "Clearness" in html and ("close call" in html or "likely" in html)
    assert f"({shown[0].margin:+.3f})" in html

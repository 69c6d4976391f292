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

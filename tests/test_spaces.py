"""Blue/green re-embedding: after a model change the old space serves every search until
the new one holds every image, then searches switch at once, never mixing the two."""

from __future__ import annotations

import pytest
from django.test import Client

from catalog import services
from catalog.models import ProductImage
from embeddings.index import collection_name, get_index
from embeddings.indexing import images_embed
from embeddings.model import encoder_for, get_encoder
from embeddings.models import IndexSpace
from embeddings.search import SearchQuery, catalog_search
from embeddings.spaces import images_missing_from, live_space_forget, space_build_start
from tests import images

pytestmark = pytest.mark.django_db(transaction=True)


def shop(count: int) -> None:
    for number in range(count):
        product = services.product_upsert(external_id=f"sku-{number}", title=f"Mug {number}").product
        services.image_create(product=product, content=images.noise_jpeg(number))


def model_change(settings):
    old = get_encoder().space
    settings.VITRINE_CLIP_MODEL = "vitrine-tiny"
    settings.VITRINE_CLIP_PRETRAINED = ""
    new = get_encoder().space
    assert new.id != old.id
    return old, new


def search_checked() -> str:
    """A search; every score must be the query's and the image's similarity in the space
    the page says it used (one space for the query vector and the collection)."""
    page = catalog_search(SearchQuery(text="mug", relevant_only=False, limit=24))
    row = IndexSpace.objects.get(embedding_space=page.embedding_space)
    encoder = encoder_for(row.model_name, row.pretrained)
    query = encoder.texts_encode(["mug"])[0]
    stored = get_index().vectors(encoder.space, [hit.image.pk for hit in page.hits])
    for hit in page.hits:
        assert hit.score == pytest.approx(float(stored[hit.image.pk] @ query), abs=1e-4)
    return page.embedding_space, len(page.hits)


def test_searches_use_the_live_space_until_the_new_one_holds_every_image(settings):
    shop(6)
    old, new = model_change(settings)
    assert search_checked() == (old.id, 6)

    # A product added while the new space is built is found at once (in both spaces).
    product = services.product_upsert(external_id="sku-late", title="Late mug").product
    late = services.image_create(product=product, content=images.noise_jpeg(99)).image
    assert search_checked() == (old.id, 7)
    assert set(get_index().vectors(new, [late.pk])) == {late.pk}
    assert IndexSpace.objects.get(embedding_space=new.id).state == "building"

    missing = list(images_missing_from(new.id).order_by("pk").values_list("pk", flat=True))
    assert len(missing) == 6
    used = []
    for start in range(0, len(missing), 2):  # the build, a batch at a time, searched between
        images_embed(image_ids=missing[start : start + 2])
        live_space_forget()  # as any other process sees it a moment later
        used.append(search_checked())

    assert used == [(old.id, 7), (old.id, 7), (new.id, 7)]
    assert dict(IndexSpace.objects.values_list("embedding_space", "state")) == {old.id: "retired", new.id: "live"}
    assert get_index().alias_target() == collection_name(new)
    assert get_index().count(old) == 7  # kept for a rollback
    assert set(ProductImage.objects.values_list("embedding_space", flat=True)) == {new.id}


def test_the_admin_shows_the_build_and_runs_it_in_the_background(settings, admin_user):
    shop(5)
    old, new = model_change(settings)
    client = Client()
    client.force_login(admin_user)

    page = client.get("/admin/index-health/").content.decode()
    assert "0 of 5 images (0%)" in page and old.id in page

    response = client.post("/admin/index-health/", {"action": "build"}, follow=True)
    assert "Re-embedding 5 images" in response.content.decode()
    from embeddings import spaces

    spaces._build_thread.join(timeout=120)
    live_space_forget()
    assert search_checked() == (new.id, 5)
    assert "Changing the model" not in client.get("/admin/index-health/").content.decode()
    assert space_build_start() == 0  # nothing left to build


def test_going_back_to_the_old_model_revives_its_space(settings):
    shop(3)
    old_settings = (settings.VITRINE_CLIP_MODEL, settings.VITRINE_CLIP_PRETRAINED)
    old, new = model_change(settings)
    images_embed(image_ids=list(ProductImage.objects.values_list("pk", flat=True)))
    live_space_forget()
    assert search_checked() == (new.id, 3)

    settings.VITRINE_CLIP_MODEL, settings.VITRINE_CLIP_PRETRAINED = old_settings
    product = services.product_upsert(external_id="sku-new", title="New mug").product
    services.image_create(product=product, content=images.noise_jpeg(50))
    assert IndexSpace.objects.get(embedding_space=old.id).state == "building"
    assert search_checked() == (new.id, 4)
    images_embed(image_ids=list(images_missing_from(old.id).values_list("pk", flat=True)))
    live_space_forget()
    assert search_checked() == (old.id, 4)
    assert get_index().count(old) == 4

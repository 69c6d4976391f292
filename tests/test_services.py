from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from catalog import services
from catalog.models import Product, ProductImage
from embeddings.index import get_index
from embeddings.model import get_encoder
from tests import images
from tests.conftest import stored_files

pytestmark = pytest.mark.django_db(transaction=True)


def test_product_upsert_creates_then_changes_only_what_differs(sent_signals):
    created = services.product_upsert(external_id="sku-1", title="Mug", price="9.50", currency="eur")
    assert created.is_created
    assert created.product.price == Decimal("9.50")
    assert created.product.currency == "EUR"

    same = services.product_upsert(external_id="sku-1", title="Mug", price=Decimal("9.5"), currency="EUR")
    assert not same.is_created
    assert same.changed_fields == ()

    changed = services.product_upsert(external_id="sku-1", title="Big mug", brand="Kito")
    assert changed.changed_fields == ("title", "brand")
    # The index is told what changed (brand is a filter field); creating and a no-op told it nothing.
    assert sent_signals == [("products_changed", {"changes": {changed.product.pk: ("title", "brand")}})]
    assert Product.objects.count() == 1
    assert Product.objects.get().title == "Big mug"


def test_product_upsert_rejects_bad_values_and_writes_nothing():
    with pytest.raises(ValidationError):
        services.product_upsert(external_id="sku-1", title="Mug", price="nine")
    with pytest.raises(ValidationError):
        services.product_upsert(external_id="sku-1", title="Mug", colour="red")
    with pytest.raises(ValidationError):
        services.product_upsert(external_id="sku-1", title="x" * 501)
    assert Product.objects.count() == 0


def test_the_same_photo_twice_on_one_product_is_one_image(settings):
    product = services.product_upsert(external_id="sku-1", title="Mug").product
    content = images.noise_jpeg(1)

    first = services.image_create(product=product, content=content)
    second = services.image_create(product=product, content=content)

    assert first.is_created and not second.is_created
    assert second.image.pk == first.image.pk
    assert len(stored_files(settings)) == 1


def test_two_products_sharing_a_photo_share_the_file_until_both_are_gone(settings):
    content = images.noise_jpeg(1)
    first = services.product_upsert(external_id="a", title="A").product
    second = services.product_upsert(external_id="b", title="B").product
    services.image_create(product=first, content=content)
    services.image_create(product=second, content=content)
    assert len(stored_files(settings)) == 1

    services.product_delete(product=first)
    assert len(stored_files(settings)) == 1
    services.product_delete(product=second)
    assert stored_files(settings) == []


def test_deleting_a_product_takes_its_vectors_out_of_the_index():
    product = services.product_upsert(external_id="sku-1", title="Mug").product
    # Indexed as it is added (no transaction open: the embedded mode embeds at once).
    image = services.image_create(product=product, content=images.noise_jpeg(1)).image
    assert ProductImage.objects.get(pk=image.pk).state == "indexed"
    space = get_encoder().space
    assert get_index().count(space) == 1

    services.product_delete(product=product)

    assert get_index().count(space) == 0
    assert ProductImage.objects.count() == 0


def test_deleting_one_image_keeps_the_others_vectors():
    product = services.product_upsert(external_id="sku-1", title="Mug").product
    keep = services.image_create(product=product, content=images.noise_jpeg(1)).image
    drop = services.image_create(product=product, content=images.noise_jpeg(2)).image
    space = get_encoder().space
    assert set(get_index().vectors(space, [keep.pk, drop.pk])) == {keep.pk, drop.pk}

    dropped = services.image_delete(image=drop)

    assert set(get_index().vectors(space, [keep.pk, dropped])) == {keep.pk}


def test_a_shared_file_deleted_while_another_product_adopts_it_is_restored(settings):
    """Product B reuses A's file; A's delete (seeing no committed user) removes it before B
    commits. B's commit must put the file back."""
    from django.core.files.storage import default_storage
    from django.db import transaction

    content = images.noise_jpeg(1)
    first = services.product_upsert(external_id="a", title="A").product
    shared = services.image_create(product=first, content=content).image
    second = services.product_upsert(external_id="b", title="B").product

    with transaction.atomic():
        adopted = services.image_create(product=second, content=content).image  # reuses the file
        assert adopted.file.name == shared.file.name
        default_storage.delete(shared.file.name)  # what A's delete does, before B commits

    assert default_storage.exists(adopted.file.name)
    with adopted.file.open("rb") as handle:
        assert handle.read() == content


def test_many_images_at_once_have_the_outcomes_one_at_a_time_would(sent_signals, settings):
    mug = services.product_upsert(external_id="mug", title="Mug").product
    bag = services.product_upsert(external_id="bag", title="Bag").product
    before = services.image_create(product=mug, content=images.noise_jpeg(1)).image
    failed = services.image_create(product=bag, content=images.noise_jpeg(2)).image
    ProductImage.objects.filter(pk=failed.pk).update(state="failed", error="store was down")
    sent_signals.clear()

    results = services.images_create_many(
        items=[
            (mug, images.noise_jpeg(1)),  # already the mug's photo
            (mug, images.noise_jpeg(3)),  # new
            (bag, images.noise_jpeg(3)),  # the same file, another product: its own image
            (mug, images.noise_jpeg(3)),  # the same photo twice in one batch: one image
            (bag, images.truncated_jpeg()),  # refused, writes nothing
            (bag, images.noise_jpeg(2)),  # the bag's failed photo, sent again: back in the queue
        ]
    )

    assert [r.is_created if not isinstance(r, Exception) else r.code for r in results] == [
        False,
        True,
        True,
        False,
        "damaged_image",
        False,
    ]
    assert results[0].image == before and results[3].image == results[1].image
    assert results[1].image.position == 1 and results[2].image.position == 1
    assert ProductImage.objects.count() == 4
    assert len(stored_files(settings)) == 3  # noise 1, 2, 3: the shared photo is stored once
    added = [ids for name, kw in sent_signals if name == "images_added" for ids in kw["image_ids"]]
    assert sorted(added) == sorted([failed.pk, results[1].image.pk, results[2].image.pk])
    assert set(ProductImage.objects.values_list("state", flat=True)) == {"indexed"}

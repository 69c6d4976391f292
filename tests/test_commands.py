from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from catalog.models import Product, ProductImage
from embeddings.index import get_index
from embeddings.model import get_encoder
from tests import images
from tests.conftest import workers_absent

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, verbosity=0)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def photo_folder(tmp_path):
    folder = tmp_path / "photos"
    (folder / "red-mug").mkdir(parents=True)
    (folder / "red-mug" / "front.jpg").write_bytes(images.noise_jpeg(1))
    (folder / "red-mug" / "side.png").write_bytes(images.image_bytes("PNG", color=(10, 200, 10)))
    (folder / "blue_hat.webp").write_bytes(images.image_bytes("WEBP", color=(0, 0, 200)))
    (folder / "notes.txt").write_text("not an image, and not named like one")
    return folder


def test_one_product_per_image(photo_folder):
    out, err = run("import_images", str(photo_folder))

    assert Product.objects.count() == 3
    assert set(Product.objects.values_list("external_id", flat=True)) == {"red-mug/front", "red-mug/side", "blue_hat"}
    assert Product.objects.get(external_id="blue_hat").title == "Blue hat"
    assert set(ProductImage.objects.values_list("state", flat=True)) == {"indexed"}
    assert "3 files: 3 images added to 3 products, 0 already present, 0 failed." in out
    assert "images/s" in out
    assert err == ""


def test_one_product_per_folder(photo_folder):
    run("import_images", str(photo_folder), "--group-by-folder", "--category", "kitchen")

    mug = Product.objects.get(external_id="red-mug")
    assert mug.images.count() == 2
    assert mug.category == "kitchen"
    assert get_index().count(get_encoder().space) == 3


def test_failures_are_listed_with_reasons_and_the_exit_is_non_zero(photo_folder):
    (photo_folder / "broken.jpg").write_bytes(images.truncated_jpeg())
    (photo_folder / "empty.png").write_bytes(b"")

    out = io.StringIO()
    err = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("import_images", str(photo_folder), stdout=out, stderr=err, verbosity=0)

    assert "2 of 5 images failed" in str(caught.value)
    assert "FAILED broken.jpg: The image data is damaged or incomplete" in err.getvalue()
    assert "FAILED empty.png: The file is empty (0 bytes)." in err.getvalue()
    assert ProductImage.objects.filter(state="indexed").count() == 3
    assert not Product.objects.filter(external_id__in=["broken", "empty"]).exists()


def test_importing_again_adds_nothing(photo_folder):
    run("import_images", str(photo_folder))
    out, _ = run("import_images", str(photo_folder))
    assert "0 images added to 3 products, 3 already present" in out
    assert ProductImage.objects.count() == 3


def test_it_stops_with_advice_when_the_embedded_store_is_held(photo_folder, settings):
    from embeddings.index import reset_index
    from embeddings.index.edge import EdgeIndex

    reset_index()
    holder = EdgeIndex(root=settings.VITRINE_INDEX_PATH, alias="held")  # as the running server would
    try:
        with pytest.raises(CommandError) as caught:
            run("import_images", str(photo_folder))
    finally:
        holder.close()
    assert "in use by another Vitrine process" in str(caught.value)
    assert "make run" in str(caught.value)
    assert Product.objects.count() == 0


def test_a_missing_folder_is_an_error(tmp_path):
    with pytest.raises(CommandError, match="is not a folder"):
        run("import_images", str(tmp_path / "nope"))


def test_the_demo_catalog_loads_once(settings):
    run("load_demo_catalog", "--products", "6", "--seed", "3")
    first = (Product.objects.count(), ProductImage.objects.count())
    assert first[0] == 6
    assert set(ProductImage.objects.values_list("state", flat=True)) == {"indexed"}

    out, _ = run("load_demo_catalog", "--products", "6", "--seed", "3")

    assert (Product.objects.count(), ProductImage.objects.count()) == first
    assert "0 products created, 0 images added, 0 embedded" in out


def test_an_import_key_too_long_for_a_product_is_a_listed_failure(photo_folder):
    deep = photo_folder / ("b" * 200) / ("c" * 60)
    deep.mkdir(parents=True)
    (deep / "d.jpg").write_bytes(images.noise_jpeg(9))

    with pytest.raises(CommandError, match="1 of 4 images failed"):
        run("import_images", str(photo_folder))

    assert set(ProductImage.objects.values_list("state", flat=True)) == {"indexed"}
    assert ProductImage.objects.count() == 3


def test_reindex_picks_up_pending_images_and_moves_the_alias(settings):
    from catalog import services

    product = services.product_upsert(external_id="sku-1", title="Mug").product
    with workers_absent():  # its task was lost (the broker went away)
        image = services.image_create(product=product, content=images.noise_jpeg(1)).image
    index = get_index()
    assert index.alias_target() is None

    out, _ = run("reindex")

    image.refresh_from_db()
    assert image.state == "indexed"
    assert "Indexed 1 images" in out
    assert index.alias_target() is not None
    assert index.count(get_encoder().space) == 1


def test_reindex_can_retry_failed_images():
    from catalog import services

    product = services.product_upsert(external_id="sku-1", title="Mug").product
    image = services.image_create(product=product, content=images.noise_jpeg(1)).image
    ProductImage.objects.filter(pk=image.pk).update(state="failed", error="store was down")

    run("reindex")
    image.refresh_from_db()
    assert image.state == "failed"

    run("reindex", "--include-failed")
    image.refresh_from_db()
    assert (image.state, image.error) == ("indexed", "")


def test_a_synthetic_catalog_gives_every_product_its_own_indexed_photo():
    out, _ = run("make_synthetic_catalog", "--products", "30", "--photos", "5")

    assert Product.objects.count() == 30
    photos = ProductImage.objects.all()
    assert set(photos.values_list("state", flat=True)) == {"indexed"}
    assert photos.values("product").distinct().count() == 30
    assert photos.values("sha256").distinct().count() == 30
    assert get_index().count(get_encoder().space) == 30
    assert "30 photos embedded" in out and "0 failed" in out
    # Each photo shows its own product's attributes (drawn for them, not another's): its
    # vector names the product's kind, among all kinds, as the demo model reads it.
    from catalog.demo import KINDS

    encoder = get_encoder()
    kinds = sorted(KINDS)
    kind_vectors = encoder.texts_encode([KINDS[k][0] for k in kinds])
    vectors = get_index().vectors(encoder.space, list(photos.values_list("pk", flat=True)))
    named = [
        kinds[int(np.argmax(kind_vectors @ vectors[image.pk]))] == image.product.attributes["kind"]
        for image in photos.select_related("product")
    ]
    assert sum(named) >= 27  # the demo model names a kind right 99 % of the time

    run("make_synthetic_catalog", "--products", "30", "--photos", "5")
    assert (Product.objects.count(), ProductImage.objects.count()) == (30, 30)


def test_loading_the_demo_again_fills_an_index_that_lost_its_points(settings):
    import shutil

    from embeddings.index import reset_index

    run("load_demo_catalog", "--products", "4", "--seed", "3", "--no-judgments")
    images_count = ProductImage.objects.count()
    reset_index()
    shutil.rmtree(settings.VITRINE_INDEX_PATH)  # say, a data folder from another engine

    out, _ = run("load_demo_catalog", "--products", "4", "--seed", "3", "--no-judgments")

    assert get_index().count(get_encoder().space) == images_count
    assert f"{images_count} images the index lacked were embedded again" in out
    assert set(ProductImage.objects.values_list("state", flat=True)) == {"indexed"}

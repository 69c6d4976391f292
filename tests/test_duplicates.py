"""Duplicates flagged at indexing: the same bytes on another product, and a re-saved or
resized copy (near duplicate); another photo of the same thing is not one."""

from __future__ import annotations

import io
import random

import pytest
from django.contrib.auth.models import User
from django.test import Client
from PIL import Image

from catalog import services
from catalog.demo import Attributes, render_product
from catalog.models import ProductImage

pytestmark = pytest.mark.django_db(transaction=True)

MUG = Attributes("mug", "red", "striped")


def add(external_id: str, content: bytes) -> ProductImage:
    product = services.product_upsert(external_id=external_id, title=external_id).product
    image = services.image_create(product=product, content=content).image  # indexed as it commits
    image.refresh_from_db()
    return image


def resaved(content: bytes) -> bytes:
    image = Image.open(io.BytesIO(content)).convert("RGB")
    image = image.resize((image.width * 6 // 10, image.height * 6 // 10))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=40)
    return buffer.getvalue()


def test_exact_and_near_duplicates_are_flagged_and_other_shots_are_not():
    photo = render_product(MUG, rng=random.Random(1))
    original = add("a", photo)
    exact = add("b", photo)
    near = add("c", resaved(photo))
    other_shot = add("d", render_product(MUG, rng=random.Random(2)))
    assert original.duplicate_of is None
    assert (exact.duplicate_of, exact.duplicate_kind) == (original, "exact")
    assert exact.duplicate_score >= 0.999
    assert (near.duplicate_of, near.duplicate_kind) == (original, "near")
    assert other_shot.duplicate_of is None, "another photo of the same thing is not a duplicate"


def test_keeping_a_flagged_image_clears_it_for_good(settings):
    photo = render_product(MUG, rng=random.Random(1))
    add("a", photo)
    copy = add("b", resaved(photo))
    assert copy.duplicate_of is not None
    admin_user = User.objects.create_superuser("admin", password="pw")
    client = Client()
    client.force_login(admin_user)
    listing = client.get("/admin/catalog/productimage/", {"duplicate": "yes"}).content.decode()
    assert "near duplicate of" in listing and f"image {copy.duplicate_of_id}" in listing
    client.post(
        "/admin/catalog/productimage/",
        {"action": "keep_duplicates", "_selected_action": [copy.pk]},
    )
    copy.refresh_from_db()
    assert (copy.duplicate_of, copy.duplicate_kept) == (None, True)
    services.images_reembed(image_ids=[copy.pk])
    copy.refresh_from_db()
    assert copy.state == "indexed" and copy.duplicate_of is None

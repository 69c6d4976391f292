from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from catalog.models import Product, ProductImage
from embeddings.index import get_index
from embeddings.model import get_encoder
from tests import images

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff():
    user = User.objects.create_superuser("admin", "admin@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def add_product_form(photo: bytes) -> dict:
    return {
        "external_id": "sku-9",
        "title": "Green bag",
        "description": "",
        "brand": "Kito",
        "category": "bags",
        "price": "30",
        "currency": "EUR",
        "url": "",
        "attributes": "{}",
        "is_active": "on",
        "images-TOTAL_FORMS": "1",
        "images-INITIAL_FORMS": "0",
        "images-MIN_NUM_FORMS": "0",
        "images-MAX_NUM_FORMS": "1000",
        "images-0-file": SimpleUploadedFile("bag.jpg", photo, "image/jpeg"),
        "images-0-position": "0",
    }


def test_a_product_added_with_a_photo_is_indexed(staff):
    response = staff.post("/admin/catalog/product/add/", add_product_form(images.noise_jpeg(4)))

    assert response.status_code == 302
    image = ProductImage.objects.get()
    assert image.product.external_id == "sku-9"
    assert image.state == "indexed"
    assert get_index().count(get_encoder().space) == 1


def test_a_bad_photo_is_refused_on_the_form_and_nothing_is_created(staff, settings):
    response = staff.post("/admin/catalog/product/add/", add_product_form(images.truncated_jpeg()))

    assert response.status_code == 200
    assert "damaged or incomplete" in response.content.decode()
    assert Product.objects.count() == 0
    assert ProductImage.objects.count() == 0


def test_the_product_page_shows_state_and_thumbnail(staff):
    staff.post("/admin/catalog/product/add/", add_product_form(images.noise_jpeg(4)))
    product = Product.objects.get()

    html = staff.get(f"/admin/catalog/product/{product.pk}/change/").content.decode()

    assert "Indexed" in html
    assert product.images.get().file.url in html


def test_deleting_a_product_in_the_admin_removes_its_vectors(staff):
    staff.post("/admin/catalog/product/add/", add_product_form(images.noise_jpeg(4)))
    product = Product.objects.get()

    staff.post(f"/admin/catalog/product/{product.pk}/delete/", {"post": "yes"})

    assert Product.objects.count() == 0
    assert get_index().count(get_encoder().space) == 0


def test_reembed_action_indexes_failed_images_again(staff):
    staff.post("/admin/catalog/product/add/", add_product_form(images.noise_jpeg(4)))
    image = ProductImage.objects.get()
    ProductImage.objects.filter(pk=image.pk).update(state="failed", error="store was down")

    staff.post("/admin/catalog/productimage/", {"action": "reembed", "_selected_action": [image.pk]})

    image.refresh_from_db()
    assert (image.state, image.error) == ("indexed", "")

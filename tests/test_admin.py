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


def change_form(product: Product, **changes) -> dict:
    form = add_product_form(images.noise_jpeg(4))
    form.update({"images-TOTAL_FORMS": "0", "images-INITIAL_FORMS": "0"})
    form.pop("images-0-file"), form.pop("images-0-position")
    form.update({"external_id": product.external_id, **changes})
    return form


def test_admin_edits_go_through_the_catalogs_services_and_reach_the_index(staff):
    """Normalised and validated as the API's writes are; the points' payload follows."""
    from embeddings.index import IndexFilters

    staff.post("/admin/catalog/product/add/", {**add_product_form(images.noise_jpeg(4)), "currency": "eur"})
    product = Product.objects.get()
    assert product.currency == "EUR"  # the service upper-cases it, as for the API and feeds

    response = staff.post(f"/admin/catalog/product/{product.pk}/change/", change_form(product, category="garden"))

    assert response.status_code == 302
    space = get_encoder().space
    vector = get_index().vectors(space, [product.images.get().pk])[product.images.get().pk]
    found = get_index().query(space, vector, filters=IndexFilters(categories=("garden",)), limit=5, offset=0)
    assert [hit.product_id for hit in found] == [product.pk]


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ('{"colour": {"nested": "object"}}', "use a string, number, boolean or a list of strings"),
        ('{"colour": "red\\u0000"}', "NUL characters"),
    ],
)
def test_attributes_the_api_refuses_are_refused_in_the_admin_too(staff, api, attributes, message):
    staff.post("/admin/catalog/product/add/", add_product_form(images.noise_jpeg(4)))
    product = Product.objects.get()

    response = staff.post(f"/admin/catalog/product/{product.pk}/change/", change_form(product, attributes=attributes))

    assert response.status_code == 200
    assert message in response.content.decode()
    product.refresh_from_db()
    assert product.attributes == {}
    refused = api.patch("/api/v1/products/sku-9", {"attributes": __import__("json").loads(attributes)})
    assert refused.status_code == 400
    assert message in refused.content.decode()

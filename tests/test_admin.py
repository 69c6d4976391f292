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
    ("rows", "attributes", "message"),
    [
        ([("c" * 65, "red")], {"c" * 65: "red"}, "Attribute names are 1 to 64 characters."),
        ([("colour", "red\x00")], {"colour": "red\x00"}, "NUL characters"),
    ],
)
def test_attributes_the_api_refuses_are_refused_in_the_admin_too(staff, api, rows, attributes, message):
    staff.post("/admin/catalog/product/add/", add_product_form(images.noise_jpeg(4)))
    product = Product.objects.get()

    response = staff.post(f"/admin/catalog/product/{product.pk}/change/", change_form(product, **attribute_rows(rows)))

    assert response.status_code == 200
    assert message in response.content.decode()
    product.refresh_from_db()
    assert product.attributes == {}
    refused = api.patch("/api/v1/products/sku-9", {"attributes": attributes})
    assert refused.status_code == 400
    assert message in refused.content.decode()


def attribute_rows(rows: list[tuple[str, str]], kinds: str = "{}") -> dict:
    """The attribute editor's inputs, as the browser sends them."""
    return {
        "attributes-name": [name for name, _ in rows],
        "attributes-value": [value for _, value in rows],
        "attributes-kinds": kinds,
    }


def attribute_inputs(html: str) -> dict:
    """The attribute editor's inputs as the page shows them (and a browser would send them)."""
    from html.parser import HTMLParser

    sent: dict[str, list[str]] = {"attributes-name": [], "attributes-value": [], "attributes-kinds": []}

    class Inputs(HTMLParser):
        def handle_starttag(self, tag, attrs):
            attributes = dict(attrs)
            if tag == "input" and attributes.get("name") in sent:
                sent[attributes["name"]].append(attributes.get("value") or "")

    Inputs().feed(html)
    return {**sent, "attributes-kinds": sent["attributes-kinds"][0]}


def test_attributes_are_edited_as_rows_and_saving_the_page_as_shown_changes_nothing(staff):
    attributes = {"colour": "red", "tags": ["gift"], "weight": 12, "ratio": 0.5, "organic": True, "note": None, "x": ""}
    product = product_with_photos("mug", attributes=attributes)
    page = f"/admin/catalog/product/{product.pk}/change/"

    html = staff.get(page).content.decode()
    shown = attribute_inputs(html)

    assert 'aria-label="Attribute 1: name"' in html and 'aria-label="Attribute 1: value"' in html
    assert "add a row per value with the same name" in html  # the help text says how lists are written
    names = [name for name in shown["attributes-name"] if name]
    assert names == sorted(attributes), "in name order, whatever order the database keeps"
    rows = dict(zip(shown["attributes-name"], shown["attributes-value"], strict=True))
    assert rows["colour"] == "red" and rows["tags"] == "gift"
    assert shown["attributes-name"][-3:] == ["", "", ""], "blank rows to fill without JavaScript"
    response = staff.post(page, change_form(product, **shown))
    assert response.status_code == 302
    product.refresh_from_db()
    assert product.attributes == attributes, "a one-value list, numbers, booleans and null keep their kinds"


def test_rows_with_one_name_make_a_list_and_an_emptied_row_removes_its_attribute(staff):
    product = product_with_photos("mug", attributes={"colour": "red", "tags": ["gift"]})
    page = f"/admin/catalog/product/{product.pk}/change/"
    shown = attribute_inputs(staff.get(page).content.decode())
    rows = list(zip(shown["attributes-name"], shown["attributes-value"], strict=True))
    rows[[name for name, _ in rows].index("colour")] = ("", "")  # colour emptied
    rows[-3:] = [("tags", "ceramic"), ("material", " cotton "), ("size", "S, M")]

    response = staff.post(page, change_form(product, **attribute_rows(rows, shown["attributes-kinds"])))

    assert response.status_code == 302
    product.refresh_from_db()
    assert product.attributes == {"tags": ["gift", "ceramic"], "material": "cotton", "size": "S, M"}


def test_a_value_without_a_name_is_refused_with_the_rows_kept(staff):
    product = product_with_photos("mug", attributes={"colour": "red"})
    page = f"/admin/catalog/product/{product.pk}/change/"

    response = staff.post(page, change_form(product, **attribute_rows([("colour", "blue"), ("", "striped")])))

    assert response.status_code == 200
    html = response.content.decode()
    assert "The value “striped” has no name" in html
    assert attribute_inputs(html)["attributes-value"][:2] == ["blue", "striped"], "what was typed is kept"
    product.refresh_from_db()
    assert product.attributes == {"colour": "red"}


def product_with_photos(external_id: str, *seeds: int, **fields) -> Product:
    from catalog import services

    product = services.product_upsert(external_id=external_id, title=f"Product {external_id}", **fields).product
    for seed in seeds:
        services.image_create(product=product, content=images.noise_jpeg(seed))
    return product


def test_the_admin_is_branded_vitrine(staff):
    html = staff.get("/admin/").content.decode()

    assert "Vitrine administration" in html
    assert "<title>Catalog and search index | Vitrine admin</title>" in html
    assert "Django administration" not in html and "Django site admin" not in html


def test_the_product_list_shows_each_products_first_photo_without_a_query_per_product(staff):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    mug = product_with_photos("mug", 11, 12)
    product_with_photos("bare")

    def listing():
        with CaptureQueriesContext(connection) as queries:
            html = staff.get("/admin/catalog/product/").content.decode()
        return html, len(queries)

    html, few = listing()
    first = mug.images.order_by("position", "id").first()
    assert f'<img src="{first.thumbnail_url}" alt="Photo of Product mug" class="vitrine-thumb small"' in html
    assert html.count('class="vitrine-thumb small"') == 1, "a product without a photo shows none"
    for n in range(4):
        product_with_photos(f"more-{n}", 20 + n)
    html, many = listing()
    assert html.count('class="vitrine-thumb small"') == 5
    assert many == few, "the photos are prefetched, not read product by product"


def test_the_product_list_filters_by_photo(staff):
    from catalog.models import ProductImage

    product_with_photos("indexed", 31)
    failed = product_with_photos("failed", 32)
    ProductImage.objects.filter(product=failed).update(state="failed", error="store was down")
    product_with_photos("bare")

    def listed(has_photo: str) -> set[str]:
        response = staff.get("/admin/catalog/product/", {"has_photo": has_photo})
        return {product.external_id for product in response.context["cl"].result_list}

    assert listed("yes") == {"indexed"}
    assert listed("none_indexed") == {"failed"}
    assert listed("no") == {"bare"}
    assert "has a photo" in staff.get("/admin/catalog/product/").content.decode()


def test_the_category_and_brand_filters_name_the_empty_value(staff):
    product_with_photos("plain")  # no category, no brand
    product_with_photos("mug", category="mugs", brand="Kito")

    html = staff.get("/admin/catalog/product/").content.decode()

    assert '<a href="?category=">(none)</a>' in html and '<a href="?brand=">(none)</a>' in html
    listed = staff.get("/admin/catalog/product/", {"category": ""}).context["cl"].result_list
    assert [product.external_id for product in listed] == ["plain"]


def test_view_on_site_leads_to_the_storefront_product_page(staff):
    product = product_with_photos("mug", 41)

    html = staff.get(f"/admin/catalog/product/{product.pk}/change/").content.decode()

    assert product.get_absolute_url() == f"/products/{product.pk}/"
    assert "View on site" in html
    followed = staff.get(f"/admin/r/{content_type_id(Product)}/{product.pk}/", follow=True)
    assert followed.redirect_chain[-1][0].endswith(f"/products/{product.pk}/")
    assert followed.status_code == 200 and product.title in followed.content.decode()
    Product.objects.filter(pk=product.pk).update(is_active=False)  # the shop would answer 404
    assert "View on site" not in staff.get(f"/admin/catalog/product/{product.pk}/change/").content.decode()


def content_type_id(model) -> int:
    from django.contrib.contenttypes.models import ContentType

    return ContentType.objects.get_for_model(model).pk


def test_embedding_space_ids_are_shown_short_with_the_full_id_in_the_tooltip_and_the_detail(staff):
    product = product_with_photos("mug", 51)
    image = product.images.get()
    space = image.embedding_space
    assert space.count("|") == 2, space
    model, weights, dimension = space.rsplit("|", 2)

    listing = staff.get("/admin/catalog/productimage/").content.decode()
    inline = staff.get(f"/admin/catalog/product/{product.pk}/change/").content.decode()
    detail = staff.get(f"/admin/catalog/productimage/{image.pk}/change/").content.decode()

    short = f"{model} · {weights.rstrip('/').replace(':', '/').rsplit('/', 1)[-1]} · {dimension}d"
    for html in (listing, inline):
        assert f'<span class="space-id" title="{space}">{short}</span>' in html
    assert space in detail


NAMED_BY_THEMSELVES = ("hidden", "submit", "button")


def unlabelled_inputs(html: str) -> list[str]:
    """The form inputs with no accessible name: no <label for>, no wrapping <label>, no
    aria-label or aria-labelledby (axe-core's "label" rule, a critical violation)."""
    from html.parser import HTMLParser

    class Inputs(HTMLParser):
        def __init__(self):
            super().__init__()
            self.inputs, self.labelled_ids, self.label_depth = [], set(), 0

        def handle_starttag(self, tag, attrs):
            attributes = dict(attrs)
            if tag == "label":
                self.label_depth += 1
                self.labelled_ids.add(attributes.get("for"))
            elif tag in ("input", "select", "textarea") and attributes.get("type") not in NAMED_BY_THEMSELVES:
                named = self.label_depth or attributes.get("aria-label") or attributes.get("aria-labelledby")
                self.inputs.append((attributes.get("id"), attributes.get("name"), bool(named)))

        def handle_endtag(self, tag):
            if tag == "label":
                self.label_depth -= 1

    parser = Inputs()
    parser.feed(html)
    return [name for id_, name, named in parser.inputs if not named and id_ not in parser.labelled_ids]


def test_every_input_of_the_product_page_and_the_api_key_form_has_an_accessible_name(staff):
    product = product_with_photos("mug", 61, 62)

    change = staff.get(f"/admin/catalog/product/{product.pk}/change/").content.decode()
    api_key = staff.get("/admin/api/apikey/add/").content.decode()

    assert 'aria-label="Photo 2: delete"' in change and 'aria-label="New photo: file"' in change
    assert unlabelled_inputs(change) == []
    assert 'aria-label="Expiry date"' in api_key and 'aria-label="Expiry time"' in api_key
    assert unlabelled_inputs(api_key) == []

"""The API's catalog side: products by external_id, bulk upserts, images by file or URL,
their state. Every refusal is checked to leave the catalog as it was."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from catalog import services
from catalog.models import Product, ProductImage
from embeddings.index import get_index
from embeddings.model import get_encoder
from tests import images
from tests.conftest import stored_files

pytestmark = pytest.mark.django_db(transaction=True)

MUG = {
    "title": "Red mug",
    "description": "Stoneware",
    "brand": "Kito",
    "category": "kitchen",
    "price": "12.50",
    "currency": "eur",
    "url": "https://shop.example/p/1",
    "attributes": {"colour": "red", "tags": ["gift"]},
}
PHOTOS = {"/a.jpg": images.noise_jpeg(501), "/b.jpg": images.noise_jpeg(502), "/notes.txt": b"just text"}


def photo(content: bytes, name: str = "photo.jpg"):
    return SimpleUploadedFile(name, content, "image/jpeg")


def snapshot() -> list:
    products = list(Product.objects.order_by("pk").values())
    photos = list(ProductImage.objects.order_by("pk").values())
    return [products, photos]


@pytest.fixture
def photo_server(photo_server):
    photo_server.photos.update(PHOTOS)
    return photo_server


# --- Products ----------------------------------------------------------------------------


def test_put_creates_then_an_identical_put_changes_nothing(api):
    created = api.put("/api/v1/products/sku-1", MUG)
    assert created.status_code == 201
    body = created.json()
    assert {k: body[k] for k in ("external_id", "title", "price", "currency")} == {
        "external_id": "sku-1",
        "title": "Red mug",
        "price": "12.50",
        "currency": "EUR",
    }
    before = snapshot()

    again = api.put("/api/v1/products/sku-1", {**MUG, "currency": "EUR"})

    assert again.status_code == 200
    assert snapshot() == before


def test_put_replaces_every_field_and_patch_changes_only_what_is_sent(api):
    api.put("/api/v1/products/sku-1", MUG)

    replaced = api.put("/api/v1/products/sku-1", {"title": "Blue mug", "attributes": {"colour": "blue"}}).json()

    assert (replaced["title"], replaced["description"], replaced["price"], replaced["brand"]) == (
        "Blue mug",
        "",
        None,
        "",
    )
    assert replaced["attributes"] == {"colour": "blue"}

    patched = api.patch("/api/v1/products/sku-1", {"price": "9.90", "attributes": {"colour": None, "size": "L"}})

    assert patched.status_code == 200
    product = Product.objects.get()
    assert (product.title, product.price, product.attributes) == ("Blue mug", Decimal("9.90"), {"size": "L"})


def test_patch_of_an_unknown_product_is_404_and_creates_nothing(api):
    response = api.patch("/api/v1/products/nope", {"price": "1"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert Product.objects.count() == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"price": "cheap"}, "price"),
        ({"price": "-1"}, "price"),
        ({"price": "1e30"}, "price"),
        ({"currency": "EURO"}, "currency"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"title": ""}, "title"),
        ({"title": "a\x00b"}, "title"),
        ({"attributes": {"colour": {"nested": 1}}}, "attributes"),
        ({"attributes": ["red"]}, "attributes"),
        ({"colour": "red"}, "colour"),
        ({"is_active": "perhaps"}, "is_active"),
    ],
)
def test_a_malformed_product_gets_400_naming_the_field_and_writes_nothing(api, change, field):
    api.put("/api/v1/products/sku-1", MUG)
    before = snapshot()

    put = api.put("/api/v1/products/sku-1", {**MUG, **change})
    patch = api.patch("/api/v1/products/sku-1", change)

    for response in (put, patch):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid"
        assert field in response.json()["error"]["fields"]
    assert snapshot() == before


def test_bodies_that_are_not_a_json_object_are_refused(api):
    broken = api.client.put(
        "/api/v1/products/x", data="{not json", content_type="application/json", headers=api._headers(None)
    )
    assert (broken.status_code, broken.json()["error"]["code"]) == (400, "parse_error")
    listed = api.put("/api/v1/products/x", [MUG])
    assert listed.status_code == 400
    text = api.client.put("/api/v1/products/x", data="title=x", content_type="text/plain", headers=api._headers(None))
    assert (text.status_code, text.json()["error"]["code"]) == (415, "unsupported_media_type")
    too_long = api.put("/api/v1/products/" + "x" * 300, MUG)
    assert (too_long.status_code, too_long.json()["error"]["code"]) == (400, "bad_external_id")
    assert Product.objects.count() == 0


def test_an_external_id_with_slashes_and_unicode_is_reachable(api):
    assert api.put("/api/v1/products/shoes/红色-1", MUG).status_code == 201
    assert (
        api.multipart("/api/v1/products/shoes/红色-1/images", {"file": photo(images.noise_jpeg(3))}).status_code == 201
    )
    assert api.get("/api/v1/products/shoes/红色-1").json()["external_id"] == "shoes/红色-1"
    assert api.delete("/api/v1/products/shoes/红色-1").status_code == 204
    assert Product.objects.count() == 0


def test_the_product_list_pages_and_filters(api):
    for n in range(5):
        api.put(f"/api/v1/products/p{n}", {**MUG, "brand": "Kito" if n % 2 else "Oslo", "is_active": n != 4})
    checkpoint = Product.objects.get(external_id="p2").updated_at
    api.patch("/api/v1/products/p0", {"title": "Changed"})

    page = api.get("/api/v1/products", {"limit": 2, "offset": 1}).json()
    assert (page["count"], page["limit"], page["offset"], len(page["results"])) == (5, 2, 1, 2)
    everything = api.get("/api/v1/products", {"limit": 500}).json()["results"]
    assert [p["external_id"] for p in everything][0] == "p0"  # most recently changed first
    assert {p["external_id"] for p in api.get("/api/v1/products", {"brand": "Kito"}).json()["results"]} == {"p1", "p3"}
    assert api.get("/api/v1/products", {"is_active": "false"}).json()["count"] == 1
    since = api.get("/api/v1/products", {"updated_since": checkpoint.isoformat()}).json()["results"]
    assert {p["external_id"] for p in since} == {"p0", "p2", "p3", "p4"}
    bad = api.get("/api/v1/products", {"limit": "0"})
    assert bad.status_code == 400 and "limit" in bad.json()["error"]["fields"]


def test_a_product_comes_with_its_images_and_their_state(api):
    api.put("/api/v1/products/sku-1", MUG)
    first = api.multipart("/api/v1/products/sku-1/images", {"file": photo(images.noise_jpeg(1))}).json()
    second = api.multipart("/api/v1/products/sku-1/images", {"file": photo(images.noise_jpeg(2))}).json()
    ProductImage.objects.filter(pk=second["id"]).update(state="failed", error="The store was down")

    product = api.get("/api/v1/products/sku-1").json()

    assert [i["id"] for i in product["images"]] == [first["id"], second["id"]]
    assert product["images"][1]["error"] == "The store was down"
    assert product["image_counts"] == {"pending": 0, "indexed": 1, "failed": 1}
    thumbnail = api.client.get(product["images"][0]["thumbnail_url"])
    assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/webp"


def test_deleting_a_product_takes_it_out_of_the_index(api, settings):
    api.put("/api/v1/products/sku-1", MUG)
    api.multipart("/api/v1/products/sku-1/images", {"file": photo(images.noise_jpeg(7))})
    assert get_index().count(get_encoder().space) == 1

    assert api.delete("/api/v1/products/sku-1").status_code == 204

    assert get_index().count(get_encoder().space) == 0
    assert api.get("/api/v1/products/sku-1").status_code == 404
    assert ProductImage.objects.count() == 0
    assert stored_files(settings) == []


# --- Bulk upsert -------------------------------------------------------------------------


def bulk_body(n: int = 3, **change) -> dict:
    return {
        "products": [{"external_id": f"b{i}", "title": f"Mug {i}", "price": f"{10 + i}.00", **change} for i in range(n)]
    }


def test_bulk_upsert_is_idempotent_and_reports_each_product(api):
    first = api.post("/api/v1/bulk/products", bulk_body())
    assert first.status_code == 200
    assert [r["status"] for r in first.json()["results"]] == ["created"] * 3
    assert first.json()["summary"] == {"created": 3, "updated": 0, "unchanged": 0, "error": 0}
    before = snapshot()

    again = api.post("/api/v1/bulk/products", bulk_body())

    assert [r["status"] for r in again.json()["results"]] == ["unchanged"] * 3
    assert snapshot() == before
    changed = bulk_body()
    changed["products"][1]["price"] = "99.00"
    result = api.post("/api/v1/bulk/products", changed).json()
    assert [r["status"] for r in result["results"]] == ["unchanged", "updated", "unchanged"]
    assert [r["id"] for r in result["results"]] == [r["id"] for r in first.json()["results"]]
    assert Product.objects.get(external_id="b1").price == Decimal("99.00")


def test_bulk_errors_are_per_product_and_write_nothing_for_that_product(api):
    body = {
        "products": [
            {"external_id": "ok-1", "title": "Good"},
            {"external_id": "bad-price", "title": "Bad", "price": "-3"},
            {"title": "No id"},
            {"external_id": "ok-1", "title": "Twice"},
            "not an object",
            {"external_id": "ok-2", "title": "Also good", "colour": "red"},
            {"external_id": "ok-3", "title": "Good too"},
        ]
    }

    response = api.post("/api/v1/bulk/products", body)

    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "error", "error", "error", "error", "error", "created"]
    assert results[1]["error"]["fields"] == {"price": ["Ensure this value is greater than or equal to 0."]}
    assert "external_id" in results[2]["error"]["fields"]
    assert results[3]["error"]["code"] == "duplicate_external_id"
    assert results[5]["error"]["fields"] == {"colour": ["Unknown field."]}
    assert [r["index"] for r in results] == list(range(7))
    assert set(Product.objects.values_list("external_id", "title")) == {("ok-1", "Good"), ("ok-3", "Good too")}


def test_a_product_failing_halfway_through_its_write_leaves_nothing(api, monkeypatch):
    """A product whose write fails after it started is rolled back alone; the products
    around it are written. Here another writer makes the one-statement insert fail (the
    products are then written one by one), and the database refuses one of them."""
    from django.db import IntegrityError

    real_upsert = services.product_upsert

    def concurrent_insert(*args, **kwargs):
        raise IntegrityError("UNIQUE constraint failed: catalog_product.external_id")

    monkeypatch.setattr(Product.objects, "bulk_create", concurrent_insert)

    def upsert_then_fail(*, external_id, **fields):
        result = real_upsert(external_id=external_id, **fields)
        if external_id == "b1":
            from django.core.exceptions import ValidationError

            raise ValidationError({"title": "The database refused it."})
        return result

    monkeypatch.setattr(services, "product_upsert", upsert_then_fail)

    results = api.post("/api/v1/bulk/products", bulk_body()).json()["results"]

    assert [r["status"] for r in results] == ["created", "error", "created"]
    assert sorted(Product.objects.values_list("external_id", flat=True)) == ["b0", "b2"]


def test_bulk_over_the_limit_is_413_and_writes_nothing(api, settings):
    settings.VITRINE_API_BULK_MAX = 2
    response = api.post("/api/v1/bulk/products", bulk_body(3))
    assert (response.status_code, response.json()["error"]["code"]) == (413, "too_many_products")
    assert "VITRINE_API_BULK_MAX" in response.json()["error"]["message"]
    for bad in ({"products": []}, {"products": "b0"}, {}, {"products": [], "extra": 1}):
        assert api.post("/api/v1/bulk/products", bad).status_code == 400
    assert Product.objects.count() == 0


# --- Images ------------------------------------------------------------------------------


def test_an_uploaded_image_is_queued_then_indexed_and_the_same_bytes_are_not_duplicated(api):
    api.put("/api/v1/products/sku-1", MUG)
    content = images.noise_jpeg(7)

    response = api.multipart("/api/v1/products/sku-1/images", {"file": photo(content)})

    assert response.status_code == 201
    image = response.json()
    assert image["state"] == "indexed"  # the embedded mode indexes right after the commit
    assert (image["product"], image["width"], image["format"]) == ("sku-1", 96, "JPEG")
    again = api.multipart("/api/v1/products/sku-1/images", {"file": photo(content)})
    assert (again.status_code, again.json()["id"]) == (200, image["id"])
    assert ProductImage.objects.count() == 1


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"", 400, "empty_file"),
        (b"<html>not an image</html>", 415, "not_an_image"),
        (images.image_bytes("ICO"), 415, "unsupported_format"),
        (images.truncated_jpeg(), 400, "damaged_image"),
        (images.decompression_bomb_png(), 400, "too_many_pixels"),
    ],
)
def test_a_bad_upload_gets_its_status_and_code_and_nothing_is_stored(api, settings, content, status, code):
    api.put("/api/v1/products/sku-1", MUG)
    before = snapshot()

    response = api.multipart("/api/v1/products/sku-1/images", {"file": photo(content)})

    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert snapshot() == before
    assert stored_files(settings) == []


def test_upload_limits_and_mistakes(api, settings):
    api.put("/api/v1/products/sku-1", MUG)
    settings.VITRINE_MAX_IMAGE_BYTES = 2048
    big = api.multipart("/api/v1/products/sku-1/images", {"file": photo(images.noise_jpeg(3, size=(300, 300)))})
    assert (big.status_code, big.json()["error"]["code"]) == (413, "file_too_large")
    body = b"x" * (3 * 1024 * 1024)
    huge = api.client.post(
        "/api/v1/products/sku-1/images", data=body, content_type="application/octet-stream", headers=api._headers(None)
    )
    assert (huge.status_code, huge.json()["error"]["code"]) == (413, "request_too_large")
    missing = api.multipart("/api/v1/products/sku-1/images", {"picture": photo(images.noise_jpeg(3))})
    assert (missing.status_code, missing.json()["error"]["code"]) == (400, "missing_file")
    unknown = api.multipart("/api/v1/products/nope/images", {"file": photo(images.noise_jpeg(3))})
    assert unknown.status_code == 404
    assert ProductImage.objects.count() == 0


def test_an_image_by_url_is_downloaded_and_remembers_its_url(api, photo_server):
    api.put("/api/v1/products/sku-1", MUG)

    response = api.post("/api/v1/products/sku-1/images", {"url": f"{photo_server.base}/a.jpg"})

    assert response.status_code == 201
    assert response.json()["source_url"] == f"{photo_server.base}/a.jpg"
    assert ProductImage.objects.get().sha256 == services.image_accept(content=PHOTOS["/a.jpg"]).sha256


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("http://127.0.0.1:9/a.jpg", 422, "private_address"),
        ("http://localhost:9/a.jpg", 422, "private_address"),
        ("http://10.1.2.3/a.jpg", 422, "private_address"),
        ("http://169.254.169.254/latest/meta-data/", 422, "private_address"),
        ("http://[::1]/a.jpg", 422, "private_address"),
        ("http://0x7f000001/a.jpg", 400, "bad_url"),  # ambiguous numeric hosts are refused outright
        ("ftp://cdn.example/a.jpg", 400, "bad_scheme"),
        ("not a url", 400, "bad_scheme"),
    ],
)
def test_urls_on_private_addresses_are_refused(api, url, status, code):
    api.put("/api/v1/products/sku-1", MUG)
    response = api.post("/api/v1/products/sku-1/images", {"url": url})
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert ProductImage.objects.count() == 0


@pytest.mark.parametrize(
    "target", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/a.jpg", "http://[::1]:8000/"]
)
def test_a_redirect_to_a_private_address_is_refused(api, photo_server, target):
    api.put("/api/v1/products/sku-1", MUG)
    response = api.post("/api/v1/products/sku-1/images", {"url": f"{photo_server.base}/to?url={target}"})
    assert (response.status_code, response.json()["error"]["code"]) == (422, "private_address")
    assert ProductImage.objects.count() == 0


def test_urls_that_are_not_images_or_not_there_are_refused(api, photo_server):
    api.put("/api/v1/products/sku-1", MUG)
    text = api.post("/api/v1/products/sku-1/images", {"url": f"{photo_server.base}/notes.txt"})
    assert (text.status_code, text.json()["error"]["code"]) == (415, "not_an_image")
    gone = api.post("/api/v1/products/sku-1/images", {"url": f"{photo_server.base}/gone.jpg"})
    assert (gone.status_code, gone.json()["error"]["code"]) == (422, "http_error")
    typo = api.post("/api/v1/products/sku-1/images", {"link": f"{photo_server.base}/a.jpg"})
    assert typo.status_code == 400
    assert ProductImage.objects.count() == 0


def test_the_status_endpoint_summarises_many_images(api, photo_server):
    api.put("/api/v1/products/sku-1", MUG)
    api.put("/api/v1/products/sku-2", MUG)
    ids = [
        api.post("/api/v1/products/sku-1/images", {"url": f"{photo_server.base}/a.jpg"}).json()["id"],
        api.post("/api/v1/products/sku-2/images", {"url": f"{photo_server.base}/b.jpg"}).json()["id"],
        api.multipart("/api/v1/products/sku-2/images", {"file": photo(images.noise_jpeg(9))}).json()["id"],
    ]
    ProductImage.objects.filter(pk=ids[1]).update(state="failed", error="The model could not read it")
    ProductImage.objects.filter(pk=ids[2]).update(state="pending")

    status = api.get("/api/v1/images/status", {"ids": f"{ids[0]},{ids[1]},{ids[2]},987654"}).json()

    assert status["summary"] == {"pending": 1, "indexed": 1, "failed": 1}
    assert [(i["id"], i["product"], i["state"]) for i in status["images"]] == [
        (ids[0], "sku-1", "indexed"),
        (ids[1], "sku-2", "failed"),
        (ids[2], "sku-2", "pending"),
    ]
    assert status["images"][1]["error"] == "The model could not read it"
    assert status["missing"] == [987654]
    by_product = api.get("/api/v1/images/status", {"product": "sku-2"}).json()
    assert by_product["summary"] == {"pending": 1, "indexed": 0, "failed": 1}
    for params in ({}, {"ids": "1,x"}, {"ids": ""}, {"ids": "1", "product": "sku-1"}, {"ids": "99999999999999999999"}):
        assert api.get("/api/v1/images/status", params).status_code == 400, params
    assert api.get("/api/v1/images/status", {"product": "nope"}).status_code == 404


def test_an_image_is_listed_fetched_and_deleted(api):
    api.put("/api/v1/products/sku-1", MUG)
    image = api.multipart("/api/v1/products/sku-1/images", {"file": photo(images.noise_jpeg(5))}).json()

    assert [i["id"] for i in api.get("/api/v1/products/sku-1/images").json()] == [image["id"]]
    assert api.get(f"/api/v1/images/{image['id']}").json()["sha256"] == image["sha256"]
    assert api.delete(f"/api/v1/images/{image['id']}").status_code == 204

    assert get_index().count(get_encoder().space) == 0
    assert api.get(f"/api/v1/images/{image['id']}").status_code == 404
    assert api.delete(f"/api/v1/images/{image['id']}").status_code == 404
    assert api.get("/api/v1/products/nope/images").status_code == 404


def test_a_shops_own_alt_text_is_set_shown_and_removed(api):
    api.put("/api/v1/products/sku-1", MUG)
    image = api.multipart("/api/v1/products/sku-1/images", {"file": photo(images.noise_jpeg(6))}).json()
    path = f"/api/v1/images/{image['id']}"

    answer = api.patch(path, {"alt_text": "  A red mug   on a shelf ", "alt_text_zh": "架子上的红色杯子"})

    assert answer.status_code == 200, answer.json()
    assert (answer.json()["alt_text"], answer.json()["alt_text_zh"]) == ("A red mug on a shelf", "架子上的红色杯子")
    product_id = Product.objects.get(external_id="sku-1").pk
    assert 'alt="A red mug on a shelf"' in Client().get(f"/products/{product_id}/").content.decode()
    chinese = Client(headers={"Accept-Language": "zh-CN"}).get(f"/products/{product_id}/").content.decode()
    assert 'alt="架子上的红色杯子"' in chinese
    removed = api.patch(path, {"alt_text_zh": ""}).json()
    assert (removed["alt_text"], removed["alt_text_zh"]) == ("A red mug on a shelf", "")


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 400, "non_field_errors"),
        ({"alt": "typo"}, 400, "alt"),
        ({"alt_text": "x" * 301}, 400, "alt_text"),
        ({"alt_text": ["a list"]}, 400, "alt_text"),
        ([], 400, None),
    ],
)
def test_bad_alt_text_bodies_are_refused_and_change_nothing(api, body, status, field):
    api.put("/api/v1/products/sku-1", MUG)
    image = api.multipart("/api/v1/products/sku-1/images", {"file": photo(images.noise_jpeg(7))}).json()
    api.patch(f"/api/v1/images/{image['id']}", {"alt_text": "Kept"})
    before = snapshot()

    answer = api.patch(f"/api/v1/images/{image['id']}", body)

    assert answer.status_code == status
    if field:
        assert field in answer.json()["error"]["fields"], answer.json()
    assert snapshot() == before
    assert api.patch("/api/v1/images/987654", {"alt_text": "x"}).status_code == 404


def test_bulk_changes_reach_the_index_in_one_task(api):
    from celery.signals import task_prerun

    from embeddings.index import IndexFilters, get_index
    from embeddings.model import get_encoder

    api.post("/api/v1/bulk/products", bulk_body(3))
    for n in (0, 1):
        api.multipart(f"/api/v1/products/b{n}/images", {"file": photo(images.noise_jpeg(40 + n))})
    moved = bulk_body(3, category="garden")

    ran: list[str] = []

    def record(sender=None, **kwargs):
        ran.append(sender.name)

    task_prerun.connect(record)
    try:
        api.post("/api/v1/bulk/products", moved)
    finally:
        task_prerun.disconnect(record)

    assert ran == ["embeddings.tasks.refresh_product_payloads"]  # one task for the request, not one per product
    # The index filters on its own copy of the product fields: the change reached it.
    encoder = get_encoder()
    vector = encoder.texts_encode(["mug"])[0]
    found = get_index().query(encoder.space, vector, filters=IndexFilters(categories=("garden",)), limit=10, offset=0)
    assert sorted(Product.objects.get(pk=hit.product_id).external_id for hit in found) == ["b0", "b1"]


# --- Hostile JSON --------------------------------------------------------------------------


def raw(api, method: str, path: str, body: str):
    call = getattr(api.client, method.lower())
    return call(path, data=body.encode(), content_type="application/json", headers=api._headers(None))


@pytest.mark.parametrize(
    "body",
    [
        '{"title": "t", "\\ud800": 1}',  # a lone surrogate: parses in Python, cannot be stored or answered
        '{"title": "t", "attributes": {"a": "\\udfff"}}',
        '{"title": "t", "attributes": {"a": 1e400}}',  # infinity
        '{"title": "t", "price": NaN}',
        '{"title": "t", "attributes": ' + "[" * 100_000 + "]" * 100_000 + "}",  # nested past the stack
    ],
)
def test_json_that_parses_but_cannot_be_kept_is_a_400_and_writes_nothing(api, body):
    responses = [
        raw(api, "PUT", "/api/v1/products/p1", body),
        raw(api, "POST", "/api/v1/bulk/products", '{"products": [{"external_id": "ok", "title": "t"}, ' + body + "]}"),
        raw(api, "POST", "/api/v1/search", body.replace('"title"', '"text"')),
    ]
    for response in responses:
        assert (response.status_code, response.json()["error"]["code"]) == (400, "parse_error")
    assert Product.objects.count() == 0


@pytest.mark.parametrize(
    "attributes",
    [{"a": "x\x00y"}, {"a": ["x\x00y"]}, {"a\x00": "x"}, {f"k{n}": "v" for n in range(51)}, {"a": "x" * 11_000}],
)
def test_attributes_postgresql_cannot_hold_or_too_large_are_refused(api, attributes):
    response = api.put("/api/v1/products/p1", {"title": "t", "attributes": attributes})
    assert response.status_code == 400 and "attributes" in response.json()["error"]["fields"]
    assert Product.objects.count() == 0


def test_patched_attributes_stay_within_the_limits(api):
    api.put("/api/v1/products/p1", {"title": "t", "attributes": {f"k{n}": "v" for n in range(50)}})
    response = api.patch("/api/v1/products/p1", {"attributes": {"one_more": "v"}})
    assert response.status_code == 400 and "attributes" in response.json()["error"]["fields"]
    assert len(Product.objects.get().attributes) == 50
    Product.objects.update(attributes=["not", "an", "object"])  # e.g. edited by hand in the admin
    assert api.patch("/api/v1/products/p1", {"attributes": {"colour": "red"}}).json()["attributes"] == {"colour": "red"}


def test_ids_a_product_could_not_be_addressed_by_are_refused(api):
    # (a PUT to such a path is the images or similar endpoint of another product: 405)
    body = {
        "products": [
            {"external_id": "mugs/images", "title": "t"},
            {"external_id": "mugs/similar", "title": "t"},
            None,
            {"external_id": " padded ", "title": "t"},
        ]
    }
    results = api.post("/api/v1/bulk/products", body).json()["results"]
    assert [r["status"] for r in results] == ["error", "error", "error", "created"]
    assert results[0]["error"]["code"] == "bad_external_id"
    assert list(Product.objects.values_list("external_id", flat=True)) == [" padded "]


def test_a_request_with_too_many_form_fields_gets_the_json_error_shape(api, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    response = api.multipart("/api/v1/search", {f"field{n}": "x" for n in range(20)})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"

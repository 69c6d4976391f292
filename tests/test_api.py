from __future__ import annotations

import json

import pytest
from django.test import Client

from catalog.models import Product, ProductImage
from embeddings.index import IndexUnavailable, get_index
from embeddings.model import get_encoder
from tests import images
from tests.conftest import stored_files

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client():
    return Client()


def put_product(client, external_id="sku-1", **fields):
    body = {"title": "Red mug", "category": "kitchen", "brand": "Kito", "price": "12.50", "currency": "EUR", **fields}
    return client.put(f"/api/v1/products/{external_id}", data=json.dumps(body), content_type="application/json")


def upload(client, content, external_id="sku-1", name="photo.jpg"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(
        f"/api/v1/products/{external_id}/images", {"file": SimpleUploadedFile(name, content, "image/jpeg")}
    )


def test_a_product_is_created_then_updated_by_external_id(client):
    assert put_product(client).status_code == 201
    response = put_product(client, title="Blue mug")
    assert response.status_code == 200
    assert response.json()["title"] == "Blue mug"
    assert Product.objects.count() == 1


def test_an_uploaded_image_is_indexed_and_then_found(client):
    put_product(client)
    content = images.noise_jpeg(7)

    response = upload(client, content)

    assert response.status_code == 201
    image = response.json()
    assert image["state"] == "indexed"  # embedded mode: indexed right after commit
    assert image["width"] == 96
    search = client.post("/api/v1/search", {"image": _file(content)})
    assert search.status_code == 200
    first = search.json()["results"][0]
    assert first["product"]["external_id"] == "sku-1"
    assert first["image"]["id"] == image["id"]
    assert first["score"] == pytest.approx(1.0, abs=1e-4)


def test_the_same_image_uploaded_again_is_not_duplicated(client):
    put_product(client)
    content = images.noise_jpeg(7)
    upload(client, content)
    again = upload(client, content)
    assert again.status_code == 200
    assert ProductImage.objects.count() == 1


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", "empty_file"),
        (b"<html>not an image</html>", "not_an_image"),
        (images.truncated_jpeg(), "damaged_image"),
        (images.decompression_bomb_png(), "too_many_pixels"),
    ],
)
def test_a_bad_upload_gets_400_with_its_code_and_nothing_is_written(client, settings, content, code):
    put_product(client)

    response = upload(client, content)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert ProductImage.objects.count() == 0
    assert stored_files(settings) == []


def test_a_file_over_the_limit_gets_413(client, settings):
    put_product(client)
    settings.VITRINE_MAX_IMAGE_BYTES = 1024
    response = upload(client, images.noise_jpeg(3, size=(300, 300)))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "file_too_large"
    assert ProductImage.objects.count() == 0


def test_an_upload_for_an_unknown_product_gets_404(client):
    response = upload(client, images.noise_jpeg(1), external_id="nope")
    assert response.status_code == 404
    assert "create it with PUT first" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"price": "cheap"}, "price"),
        ({"price": "-1"}, "price"),
        ({"currency": "EURO"}, "currency"),
        ({"url": "not a url"}, "url"),
        ({"title": ""}, "title"),
    ],
)
def test_a_malformed_product_gets_400_naming_the_field(client, body, field):
    response = put_product(client, **body)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert Product.objects.count() == 0


def test_a_body_that_is_not_json_gets_400(client):
    response = client.put("/api/v1/products/x", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]["message"]


def test_search_by_text_with_filters_and_paging(client):
    for number in range(3):
        put_product(client, external_id=f"sku-{number}", price=str(10 + number))
        upload(client, images.noise_jpeg(number), external_id=f"sku-{number}")

    response = client.get("/api/v1/search", {"q": "red mug", "price_min": "11", "limit": 1, "offset": 1})

    body = response.json()
    assert response.status_code == 200
    assert (body["limit"], body["offset"]) == (1, 1)
    assert len(body["results"]) == 1
    assert body["results"][0]["product"]["external_id"] in {"sku-1", "sku-2"}


def test_search_by_json_body(client):
    put_product(client)
    upload(client, images.noise_jpeg(1))
    response = client.post(
        "/api/v1/search", data=json.dumps({"q": "mug", "category": ["kitchen"]}), content_type="application/json"
    )
    assert response.status_code == 200
    assert [r["product"]["external_id"] for r in response.json()["results"]] == ["sku-1"]


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({}, 400, "missing_query"),
        ({"q": "mug", "limit": "500"}, 400, "invalid"),
        ({"q": "mug", "price_min": "9", "price_max": "3"}, 400, "invalid"),
        ({"q": "mug", "product_id": "1"}, 400, "invalid"),
        ({"product_id": "424242"}, 404, "not_found"),
    ],
)
def test_bad_search_requests_get_a_specific_error(client, params, status, code):
    response = client.get("/api/v1/search", params)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_a_bad_search_photo_gets_its_intake_error(client):
    response = client.post("/api/v1/search", {"image": _file(images.truncated_jpeg())})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "damaged_image"


def test_search_answers_503_when_the_store_is_unavailable(client, monkeypatch):
    from embeddings import search

    class DownIndex:
        def query(self, *args, **kwargs):
            raise IndexUnavailable("The Qdrant server at http://qdrant:6333 did not answer")

    monkeypatch.setattr(search, "get_index", lambda: DownIndex())
    response = client.get("/api/v1/search", {"q": "mug"})
    assert response.status_code == 503
    assert response.json()["error"] == {
        "code": "index_unavailable",
        "message": "The Qdrant server at http://qdrant:6333 did not answer",
    }


def test_deleting_a_product_removes_it_from_search(client):
    put_product(client)
    content = images.noise_jpeg(7)
    upload(client, content)

    assert client.delete("/api/v1/products/sku-1").status_code == 204

    assert get_index().count(get_encoder().space) == 0
    search = client.post("/api/v1/search", {"image": _file(content)})
    assert search.json()["results"] == []


def test_writes_need_the_token_when_one_is_set(client, settings):
    settings.VITRINE_API_TOKEN = "s3cret"
    assert put_product(client).status_code == 401
    wrong = client.put(
        "/api/v1/products/a", data="{}", content_type="application/json", headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    right = client.put(
        "/api/v1/products/a",
        data=json.dumps({"title": "A"}),
        content_type="application/json",
        headers={"Authorization": "Bearer s3cret"},
    )
    assert right.status_code == 201
    assert client.get("/api/v1/search", {"q": "a"}).status_code == 200  # reads stay open


def test_writes_are_closed_without_a_token_when_debug_is_off(client, settings):
    settings.DEBUG = False
    settings.VITRINE_API_TOKEN = ""
    response = put_product(client)
    assert response.status_code == 403
    assert "VITRINE_API_TOKEN" in response.json()["error"]["message"]


def _file(content: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("query.jpg", content, "image/jpeg")


def test_a_product_id_with_a_slash_is_reachable(client):
    assert put_product(client, external_id="shoes/red").status_code == 201
    assert upload(client, images.noise_jpeg(3), external_id="shoes/red").status_code == 201
    assert client.get("/api/v1/products/shoes/red").json()["external_id"] == "shoes/red"
    assert client.delete("/api/v1/products/shoes/red").status_code == 204


def test_a_failed_image_sent_again_is_indexed_again(client):
    put_product(client)
    content = images.noise_jpeg(7)
    image_id = upload(client, content).json()["id"]
    ProductImage.objects.filter(pk=image_id).update(state="failed", error="store was down")

    again = upload(client, content)

    assert again.status_code == 200
    assert again.json()["state"] == "indexed"


def test_a_non_ascii_token_is_refused_not_a_crash(client, settings):
    settings.VITRINE_API_TOKEN = "s3cret"
    response = client.get("/api/v1/search", {"q": "mug"}, headers={"Authorization": "Bearer café"})
    assert response.status_code == 401


def test_writes_without_a_token_are_refused_from_another_machine(client):
    response = client.put(
        "/api/v1/products/a", data=json.dumps({"title": "A"}), content_type="application/json", REMOTE_ADDR="192.0.2.10"
    )
    assert response.status_code == 403
    assert "VITRINE_API_TOKEN" in response.json()["error"]["message"]
    assert Product.objects.count() == 0


def test_a_body_far_over_the_limit_is_refused_before_it_is_read(client, settings):
    settings.VITRINE_MAX_IMAGE_BYTES = 1024
    body = b"x" * (2 * 1024 * 1024)
    response = client.post("/api/v1/search", data=body, content_type="application/octet-stream")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "file_too_large"

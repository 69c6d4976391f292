"""The API's search side on a small demo shop with the shipped demo model: words, photos
(file, base64, URL), likes, filters, facets, cutoff, sorting, similar products, errors,
and the OpenAPI documents."""

from __future__ import annotations

import base64
import re
from collections import Counter
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from catalog.models import Product
from embeddings.index import IndexUnavailable
from embeddings.model import get_encoder
from tests import images
from tests.conftest import SMALL_SHOP

pytestmark = pytest.mark.django_db(transaction=True)

SHOP_SIZE = SMALL_SHOP["products"]


@pytest.fixture
def shop(small_shop):
    return small_shop


def photo_of(product: Product) -> bytes:
    image = product.images.order_by("position", "pk").first()
    with image.file.open("rb") as handle:
        return handle.read()


def search(api, **body):
    response = api.post("/api/v1/search", body)
    assert response.status_code == 200, response.content
    return response.json()


def ids(body) -> list[str]:
    return [hit["external_id"] for hit in body["results"]]


def test_words_find_the_product_and_say_how(search_api, shop):
    target = shop[5]

    body = search(search_api, text=target.title, limit=5)

    first = body["results"][0]
    assert first["external_id"] == target.external_id
    assert (first["id"], first["title"], first["category"]) == (target.pk, target.title, target.category)
    assert Decimal(first["price"]) == target.price
    assert body["query_kind"] == "text"
    assert body["embedding_space"] == get_encoder().space.id
    assert body["cutoff"] is not None and all(hit["score"] >= body["cutoff"] for hit in body["results"])
    assert 1 <= body["total"] < SHOP_SIZE and body["total"] + body["loosely_related"] == SHOP_SIZE
    thumbnail = Client().get(first["thumbnail_url"])
    assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/webp"

    everything = search(search_api, text=target.title, cutoff=False, limit=100)
    assert everything["total"] == SHOP_SIZE and len(everything["results"]) == SHOP_SIZE
    scores = [hit["score"] for hit in everything["results"]]
    assert scores == sorted(scores, reverse=True)
    page_two = search(search_api, text=target.title, cutoff=False, limit=10, offset=10)
    assert ids(page_two) == ids(everything)[10:20]


def test_filters_narrow_and_facets_count_what_each_choice_gives(search_api, shop):
    colours = Counter(p.attributes["colour"] for p in shop)
    colour = colours.most_common(1)[0][0]
    everything = search(
        search_api, text="product", cutoff=False, limit=100, facets=["category", "brand", "price", "tags.colour"]
    )
    facets = everything["facets"]
    assert {v["value"]: v["count"] for v in facets["tags.colour"]} == dict(colours)
    assert {v["value"]: v["count"] for v in facets["category"]} == dict(Counter(p.category for p in shop))
    assert sum(bucket["count"] for bucket in everything["price_buckets"]) == SHOP_SIZE

    brand = shop[0].brand
    low, high = Decimal("10"), Decimal("40")
    body = search(
        search_api,
        text="product",
        cutoff=False,
        limit=100,
        filters={"brand": [brand], "price_min": "10", "price_max": "40", "tags": {"colour": [colour]}},
        facets=["brand", "tags.colour"],
    )

    expected = {
        p.external_id for p in shop if p.brand == brand and low <= p.price <= high and p.attributes["colour"] == colour
    }
    assert set(ids(body)) == expected and body["total"] == len(expected)
    chosen = [v for v in body["facets"]["tags.colour"] if v["selected"]]
    assert chosen == [{"value": colour, "count": len(expected), "selected": True}]
    # Disjunctive: another brand's count is what choosing it instead would give.
    for value in body["facets"]["brand"]:
        would_be = {
            p for p in shop if p.brand == value["value"] and low <= p.price <= high and p.attributes["colour"] == colour
        }
        assert value["count"] == len(would_be)


def test_sorting_by_price_and_inactive_products(search_api, api, shop):
    by_price = search(search_api, text="product", cutoff=False, limit=100, sort="price")
    prices = [Decimal(hit["price"]) for hit in by_price["results"]]
    assert prices == sorted(prices)
    hidden = shop[3]
    api.patch(f"/api/v1/products/{hidden.external_id}", {"is_active": False})

    assert hidden.external_id not in ids(search(search_api, text=hidden.title, cutoff=False, limit=100))
    only_inactive = search(search_api, text=hidden.title, cutoff=False, filters={"active": False})
    assert ids(only_inactive) == [hidden.external_id]
    both = search(search_api, text=hidden.title, cutoff=False, limit=100, filters={"active": None})
    assert hidden.external_id in ids(both) and both["total"] == SHOP_SIZE


def test_a_photo_as_a_file_as_base64_or_by_url_finds_its_product(search_api, shop, photo_server):
    target = shop[7]
    content = photo_of(target)
    photo_server.photos["/query.jpg"] = content

    as_file = search_api.multipart("/api/v1/search", {"image": SimpleUploadedFile("q.jpg", content), "limit": "3"})
    as_base64 = search(search_api, image_base64=base64.b64encode(content).decode(), limit=3)
    as_data_url = search(search_api, image_base64="data:image/jpeg;base64," + base64.b64encode(content).decode())
    by_url = search(search_api, image_url=f"{photo_server.base}/query.jpg", limit=3)

    assert as_file.status_code == 200
    for body in (as_file.json(), as_base64, as_data_url, by_url):
        assert body["query_kind"] == "image"
        assert body["results"][0]["external_id"] == target.external_id
        assert body["results"][0]["score"] == pytest.approx(1.0, abs=1e-3)
    with_words = search(search_api, image_base64=base64.b64encode(content).decode(), text=target.title)
    assert with_words["query_kind"] == "image+text"
    assert with_words["results"][0]["external_id"] == target.external_id
    multipart_filters = search_api.multipart(
        "/api/v1/search",
        {"image": SimpleUploadedFile("q.jpg", content), "filters": '{"brand": ["no such brand"]}', "facets": ["brand"]},
    )
    assert multipart_filters.json()["results"] == []
    brands = {v["value"]: (v["count"], v["selected"]) for v in multipart_filters.json()["facets"]["brand"]}
    assert brands["no such brand"] == (0, True) and brands[target.brand] == (1, False)


def test_likes_recommend_and_unlikes_move_away(search_api, shop):
    liked = shop[2]

    body = search(search_api, like=[liked.external_id], cutoff=False, limit=100)

    assert body["query_kind"] == "products"
    assert liked.external_id not in ids(body)
    nearest = ids(search(search_api, image_base64=base64.b64encode(photo_of(liked)).decode(), cutoff=False))
    assert ids(body)[0] == nearest[1]  # the liked product's nearest other product leads
    unliked = ids(body)[0]
    refined = search(search_api, like=[liked.external_id], unlike=[unliked], cutoff=False, limit=100)
    assert unliked not in ids(refined) and len(refined["results"]) == SHOP_SIZE - 2


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 422, "missing_query"),
        ({"text": "   "}, 422, "missing_query"),
        ({"text": "mug", "limit": 500}, 400, "invalid"),
        ({"text": "mug", "offset": -1}, 400, "invalid"),
        ({"text": "mug", "sort": "cheapest"}, 400, "invalid"),
        ({"text": "mug", "facets": ["colour"]}, 400, "invalid"),
        ({"text": "mug", "filters": {"price_min": "9", "price_max": "3"}}, 422, "bad_price_range"),
        ({"text": "mug", "filters": {"colour": ["red"]}}, 400, "invalid"),
        ({"query": "mug"}, 400, "invalid"),
        ({"like": ["no-such-product"]}, 422, "unknown_product"),
        ({"like": ["demo-11-0001"], "unlike": ["demo-11-0001"]}, 422, "bad_refinement"),
        ({"image_base64": "%%%"}, 400, "invalid"),
        ({"image_base64": base64.b64encode(b"<svg/>").decode()}, 415, "not_an_image"),
        ({"image_base64": base64.b64encode(images.truncated_jpeg()).decode()}, 400, "damaged_image"),
        ({"image_url": "http://169.254.169.254/latest/meta-data/"}, 422, "private_address"),
        ({"image_url": "http://x.example/a.jpg", "image_base64": "AAAA"}, 422, "too_many_images"),
        ({"text": ["mug"]}, 400, "invalid"),
        ({"text": "mug", "cutoff": "sometimes"}, 400, "invalid"),
    ],
)
def test_bad_searches_get_a_specific_error(search_api, api, body, status, code):
    api.put("/api/v1/products/demo-11-0001", {"title": "Red mug"})
    response = search_api.post("/api/v1/search", body)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.json()
    assert response.json()["error"]["message"]


def test_a_search_photo_over_the_limit_is_413(search_api, settings, db):
    settings.VITRINE_MAX_IMAGE_BYTES = 2048
    content = images.noise_jpeg(3, size=(300, 300))
    as_file = search_api.multipart("/api/v1/search", {"image": SimpleUploadedFile("q.jpg", content)})
    assert (as_file.status_code, as_file.json()["error"]["code"]) == (413, "file_too_large")
    as_base64 = search_api.post("/api/v1/search", {"image_base64": base64.b64encode(content).decode()})
    assert (as_base64.status_code, as_base64.json()["error"]["code"]) == (413, "file_too_large")


def test_similar_products_leave_the_product_out(search_api, shop):
    target = shop[4]
    response = search_api.get(f"/api/v1/products/{target.external_id}/similar", {"limit": 5, "cutoff": "false"})
    body = response.json()
    assert response.status_code == 200 and len(body["results"]) == 5
    assert target.external_id not in ids(body)
    assert body["query_kind"] == "product"
    nearest = ids(search(search_api, image_base64=base64.b64encode(photo_of(target)).decode(), cutoff=False))
    # Products of its kind come first (VITRINE_SIMILAR_KIND_FIELDS), the nearest of them first
    # (the product's other photos may rank its neighbours differently).
    kinds = {p.external_id: (p.category, p.attributes["kind"]) for p in shop}
    same_kind = [i for i in nearest if kinds[i] == kinds[target.external_id]]
    assert ids(body)[0] in same_kind[1:3]
    assert [kinds[i] for i in ids(body)[:3]] == [kinds[target.external_id]] * 3
    relevant = search_api.get(f"/api/v1/products/{target.external_id}/similar").json()
    assert all(hit["score"] >= relevant["cutoff"] for hit in relevant["results"])
    assert search_api.get("/api/v1/products/nope/similar").status_code == 404
    assert search_api.get(f"/api/v1/products/{target.external_id}/similar", {"limit": 0}).status_code == 400


def test_similar_for_a_product_without_indexed_photos_is_422(search_api, api, db):
    api.put("/api/v1/products/bare", {"title": "No photo yet"})
    response = search_api.get("/api/v1/products/bare/similar")
    assert (response.status_code, response.json()["error"]["code"]) == (422, "not_indexed")


def test_search_answers_503_with_the_reason_when_the_index_is_down(search_api, db, monkeypatch):
    from embeddings.search import engine as search_service

    class DownIndex:
        def __getattr__(self, name):  # every call the engine makes fails as a down server's would
            def down(*args, **kwargs):
                raise IndexUnavailable("The Qdrant server at http://qdrant:6333 did not answer")

            return down

    monkeypatch.setattr(search_service, "get_index", lambda: DownIndex())
    response = search_api.post("/api/v1/search", {"text": "mug"})
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert response.json() == {
        "error": {"code": "index_unavailable", "message": "The Qdrant server at http://qdrant:6333 did not answer"}
    }


def test_the_openapi_schema_documents_every_endpoint_and_error(db):
    from api.urls import urlpatterns

    response = Client().get("/api/schema/", headers={"Accept": "application/json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    routes = {
        "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))
        for pattern in urlpatterns
        if str(pattern.pattern).startswith("api/v1/")
    }
    assert routes == set(schema["paths"])
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), (method, path)
            if not path.startswith("/api/v1/health"):  # no key needed: for load balancers
                assert {"401", "403", "429"} <= set(operation["responses"]), (method, path)
                assert operation["security"] == [{"BearerKey": []}, {"HeaderKey": []}]
    for path in ("/api/v1/health", "/api/v1/health/ready"):
        assert {"200", "503"} <= set(schema["paths"][path]["get"]["responses"])
        assert schema["paths"][path]["get"].get("security", [{}]) == [{}]
    search = schema["paths"]["/api/v1/search"]["post"]
    assert {"application/json", "multipart/form-data"} <= set(search["requestBody"]["content"])
    assert {"200", "400", "413", "415", "422", "503"} <= set(search["responses"])
    assert search["requestBody"]["content"]["application/json"]["examples"]


def test_the_interactive_docs_work_offline(db):
    page = Client().get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert any("swagger-ui-bundle.js" in asset for asset in assets)
    assert not re.search(r'(?:src|href)="https?://', html), "nothing is loaded from the internet"
    for asset in assets:
        response = Client().get(asset)
        assert response.status_code == 200, asset
        assert b"".join(response.streaming_content) if response.streaming else response.content, asset


def test_bodies_over_two_megabytes_are_taken_where_the_api_expects_them(search_api, api, db):
    import io

    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(8).integers(0, 256, size=(1000, 1000, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    content = buffer.getvalue()
    assert len(content) > 2 * 1024 * 1024  # base64 makes it larger still

    response = search_api.post("/api/v1/search", {"image_base64": base64.b64encode(content).decode()})

    assert response.status_code == 200 and response.json()["query_kind"] == "image"
    description = "Stoneware. " * 1800  # ~20 KB per product, 150 products: ~3 MB
    body = {"products": [{"external_id": f"p{n}", "title": "Mug", "description": description} for n in range(150)]}
    bulk = api.post("/api/v1/bulk/products", body)
    assert bulk.status_code == 200 and bulk.json()["summary"]["created"] == 150
    too_long = api.put("/api/v1/products/x", {"title": "Mug", "description": "x" * 3_000_000})
    assert too_long.status_code == 400 and too_long.json()["error"]["fields"]["description"]


def test_unknown_api_paths_answer_json_for_every_method(search_api, db):
    for method in ("GET", "POST", "PUT", "DELETE"):
        path = "/api/v1/images/not-a-number"
        response = search_api.get(path) if method == "GET" else search_api.send(method, path, {})
        assert response.status_code == 404, method
        assert response.json()["error"]["code"] == "not_found"


def test_number_and_boolean_attributes_filter_and_count_as_text(search_api, api, db):
    for n, (size, is_organic) in enumerate([(42, True), (38, False), (42, False)]):
        api.put(f"/api/v1/products/p{n}", {"title": "Shoe", "attributes": {"size": size, "organic": is_organic}})
        upload = SimpleUploadedFile("p.jpg", images.noise_jpeg(60 + n), "image/jpeg")
        assert api.multipart(f"/api/v1/products/p{n}/images", {"file": upload}).status_code == 201

    body = search(
        search_api, text="shoe", cutoff=False, filters={"tags": {"size": ["42"]}}, facets=["tags.size", "tags.organic"]
    )

    assert sorted(ids(body)) == ["p0", "p2"]
    assert {v["value"]: v["count"] for v in body["facets"]["tags.size"]} == {"42": 2, "38": 1}
    assert {v["value"]: v["count"] for v in body["facets"]["tags.organic"]} == {"true": 1, "false": 1}


def test_multipart_filters_must_be_a_json_object_within_limits(search_api, db):
    for filters in ("not json", "[" * 100_000, '{"brand": ["\\ud800"]}', '{"price_max": 1e400}'):
        response = search_api.multipart("/api/v1/search", {"text": "mug", "filters": filters})
        assert response.status_code == 400, filters
        assert response.json()["error"]["fields"] == {"filters": ["Not JSON."]}


def test_a_cache_that_is_down_slows_nothing_to_a_failure(search_api, shop, settings, caplog, monkeypatch):
    """Redis stopped (here: nothing listening on its port): keyed API calls are served
    unthrottled and searches encode their query instead of answering 500."""
    from searchsite import caching
    from tests.live import free_port

    monkeypatch.setattr(caching, "_last_logged", 0.0)  # said once a minute: this test must see it

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }
    body = search(search_api, text="red striped mug")
    assert body["results"]
    assert Client().get("/", {"q": "red striped mug"}).status_code == 200
    assert "The cache is unavailable" in caplog.text


def test_a_cache_that_hangs_is_asked_once_then_left_alone_for_a_moment(search_api, shop, settings, monkeypatch):
    """A Redis that accepts and never answers: the first call waits for its socket
    timeout; the calls after it, for RETRY_AFTER_SECONDS, do not try (no new connection)."""
    import socket
    import threading

    from searchsite import caching

    listener = socket.socket()
    listener.settimeout(None)  # block in accept (whatever the default timeout)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    monkeypatch.setattr(caching, "RETRY_AFTER_SECONDS", 60.0)
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{listener.getsockname()[1]}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    try:
        import time

        def connections() -> int:
            time.sleep(0.5)  # the accepting thread takes its turn
            return len(accepted)

        assert search(search_api, text="red striped mug")["results"]
        tried = connections()
        assert tried >= 1 and caching.cache_is_down()
        for _ in range(3):
            assert search(search_api, text="red striped mug")["results"]
            assert Client().get("/", {"q": "red striped mug"}).status_code == 200
        assert connections() == tried  # left alone: nothing more asked of it
    finally:
        listener.close()
        for connection in accepted:
            connection.close()

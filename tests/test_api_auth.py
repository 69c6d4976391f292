"""Who may call the API: keys made in the admin (shown once, stored hashed), scopes,
revocation and expiry, per-key throttling, CORS, and keys kept out of logs."""

from __future__ import annotations

import hashlib
import io
import logging
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from api.keys import api_key_create, api_key_revoke
from api.models import ApiKey
from catalog.models import Product, ProductImage
from tests import images
from tests.conftest import ApiClient, api_key_for

pytestmark = pytest.mark.django_db(transaction=True)

PRODUCT = {"title": "Red mug", "category": "kitchen", "price": "12.50", "currency": "EUR"}


@pytest.fixture
def catalog(api):
    """One product with one indexed photo, made through the API."""
    assert api.put("/api/v1/products/sku-1", PRODUCT).status_code == 201
    upload = api.multipart("/api/v1/products/sku-1/images", {"file": _jpeg(images.noise_jpeg(4))})
    assert upload.status_code == 201
    return upload.json()["id"]


def _jpeg(content: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("photo.jpg", content, "image/jpeg")


def snapshot() -> list:
    """Everything a request could write to the catalog."""
    products = list(Product.objects.order_by("pk").values_list("pk", "external_id", "title", "price", "updated_at"))
    photos = list(ProductImage.objects.order_by("pk").values_list("pk", "state", "updated_at"))
    return [products, photos]


# (method, path, body, scopes that may call it)
ENDPOINTS = [
    ("GET", "/api/v1/products", None, "read"),
    ("GET", "/api/v1/products/sku-1", None, "read"),
    ("GET", "/api/v1/products/sku-1/images", None, "read"),
    ("GET", "/api/v1/images/status?product=sku-1", None, "read"),
    ("PUT", "/api/v1/products/sku-1", {**PRODUCT, "title": "Changed"}, "write"),
    ("PUT", "/api/v1/products/sku-new", PRODUCT, "write"),
    ("PATCH", "/api/v1/products/sku-1", {"price": "1.00"}, "write"),
    ("DELETE", "/api/v1/products/sku-1", None, "write"),
    ("POST", "/api/v1/bulk/products", {"products": [{"external_id": "sku-2", "title": "Mug"}]}, "write"),
    ("POST", "/api/v1/products/sku-1/images", {"url": "https://cdn.example/x.jpg"}, "write"),
    ("DELETE", "/api/v1/images/{image}", None, "write"),
    ("POST", "/api/v1/search", {"text": "mug"}, "search"),
    ("GET", "/api/v1/products/sku-1/similar", None, "search"),
]
WRONG_SCOPE = {"write": "search", "search": "catalog:write"}


def call(client: ApiClient, method: str, path: str, body, image_id: int):
    path = path.format(image=image_id)
    if method == "GET":
        return client.get(path)
    if method == "DELETE":
        return client.delete(path)
    return client.send(method, path, body)


def expired_key() -> str:
    return api_key_for("search", "catalog:write", expires_at=timezone.now() - timedelta(minutes=1))


def revoked_key() -> str:
    new = api_key_create(name="old", scopes=["search", "catalog:write"])
    api_key_revoke(api_key=new.api_key)
    return new.key


@pytest.mark.parametrize(("method", "path", "body", "needs"), ENDPOINTS, ids=[f"{e[0]} {e[1]}" for e in ENDPOINTS])
def test_the_authorization_matrix_and_nothing_written_when_refused(catalog, method, path, body, needs):
    forged = "vtr_abcdefgh_" + "A" * 43
    refusals = [
        (None, 401, "not_authenticated"),
        (forged, 401, "invalid_key"),
        ("not-a-key", 401, "invalid_key"),
        (revoked_key(), 401, "revoked_key"),
        (expired_key(), 401, "expired_key"),
    ]
    if needs in WRONG_SCOPE:
        refusals.append((api_key_for(WRONG_SCOPE[needs]), 403, "missing_scope"))
    before = snapshot()
    for key, status, code in refusals:
        response = call(ApiClient(key), method, path, body, catalog)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), key
        if status == 401:
            assert response["WWW-Authenticate"].startswith("Bearer")
    assert snapshot() == before

    allowed = {"read": ["search", "catalog:write"], "write": ["catalog:write"], "search": ["search"]}[needs]
    response = call(ApiClient(api_key_for(allowed[-1])), method, path, body, catalog)
    # The URL intake refuses the unreachable host with 422; everything else succeeds.
    assert response.status_code in ((422,) if "images" in path and method == "POST" else (200, 201, 204))


def test_a_key_is_accepted_in_x_api_key_too(catalog):
    key = api_key_for("search")
    response = Client().post(
        "/api/v1/search", data={"text": "mug"}, content_type="application/json", headers={"X-Api-Key": key}
    )
    assert response.status_code == 200


def test_a_malformed_authorization_header_is_refused(catalog):
    key = api_key_for("search")
    for header in (f"Basic {key}", "Bearer", f"Token {key}", "Bearer café"):
        response = Client().get("/api/v1/products", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.json()["error"]["code"] == "invalid_key"


def test_only_a_hash_of_the_key_is_stored():
    new = api_key_create(name="shop", scopes=["search"])
    row = ApiKey.objects.filter(pk=new.api_key.pk).values().get()
    assert row["secret_hash"] == hashlib.sha256(new.key.encode()).hexdigest()
    assert row["prefix"] == new.key[:12]
    secret = new.key[13:]
    assert not any(secret in str(value) for value in row.values())


def test_last_use_is_recorded(catalog):
    new = api_key_create(name="shop", scopes=["search"])
    assert new.api_key.last_used_at is None
    ApiClient(new.key).get("/api/v1/products")
    new.api_key.refresh_from_db()
    assert new.api_key.last_used_at is not None


def test_keys_never_reach_the_logs(catalog, caplog):
    good = api_key_for("search")
    revoked = revoked_key()
    caplog.set_level(logging.DEBUG)
    ApiClient(good).get("/api/v1/products")
    ApiClient(good).put("/api/v1/products/x", PRODUCT)  # 403
    ApiClient(revoked).get("/api/v1/products")
    ApiClient(good[:-2] + "zz").get("/api/v1/products")
    logged = "\n".join(f"{record.getMessage()} {record.args}" for record in caplog.records)
    assert "API request refused" in logged  # the refusals are logged…
    for key in (good, revoked):
        assert key not in logged and key[13:] not in logged  # …by prefix only


def test_a_key_over_its_rate_gets_429_with_retry_after(catalog, settings):
    settings.VITRINE_API_RATE = "1000/minute"
    limited = ApiClient(api_key_for("search", rate="3/minute"))
    other = ApiClient(api_key_for("search"))
    assert [limited.get("/api/v1/products").status_code for _ in range(3)] == [200, 200, 200]

    refused = limited.get("/api/v1/products")

    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "throttled"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert other.get("/api/v1/products").status_code == 200  # per key, not global


def test_the_default_rate_comes_from_settings(catalog, settings):
    settings.VITRINE_API_RATE = "2/hour"
    client = ApiClient(api_key_for("catalog:write"))
    statuses = [client.put(f"/api/v1/products/p{n}", PRODUCT).status_code for n in range(3)]
    assert statuses == [201, 201, 429]
    assert not Product.objects.filter(external_id="p2").exists()
    assert 60 < int(client.get("/api/v1/products")["Retry-After"]) <= 3600


def test_cors_allows_the_configured_storefront_only(catalog, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://shop.example"]
    preflight = {"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}
    response = Client().options(
        "/api/v1/search", headers={**preflight, "Access-Control-Request-Headers": "authorization, content-type"}
    )
    assert response["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "authorization" in response["Access-Control-Allow-Headers"]
    assert "x-api-key" in response["Access-Control-Allow-Headers"]

    stranger = Client().options("/api/v1/search", headers={**preflight, "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in stranger
    search = Client().post(
        "/api/v1/search",
        data={"text": "mug"},
        content_type="application/json",
        headers={"Origin": "https://shop.example", "Authorization": f"Bearer {api_key_for('search')}"},
    )
    assert search.status_code == 200
    assert search["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "Access-Control-Allow-Origin" not in Client().get("/", headers={"Origin": "https://shop.example"})


def test_a_key_is_made_in_the_admin_shown_once_and_revoked_there(catalog):
    User.objects.create_superuser("boss", "boss@shop.example", "a-long-test-password-1")
    admin = Client()
    admin.force_login(User.objects.get(username="boss"))

    response = admin.post(
        "/admin/api/apikey/add/",
        {"name": "storefront", "scopes": ["search"], "rate": "", "expires_at_0": "", "expires_at_1": ""},
    )

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    key = re.search(r'value="(vtr_[^"]+)"', response.content.decode())[1]
    api_key = ApiKey.objects.get(name="storefront")
    assert api_key.name == "storefront" and api_key.scopes == ["search"]
    assert api_key.created_by.username == "boss"
    assert ApiClient(key).post("/api/v1/search", {"text": "mug"}).status_code == 200
    assert ApiClient(key).put("/api/v1/products/x", PRODUCT).status_code == 403
    for page in ("/admin/api/apikey/", f"/admin/api/apikey/{api_key.pk}/change/"):
        html = admin.get(page).content.decode()
        assert api_key.prefix in html and key not in html and key[13:] not in html

    admin.post("/admin/api/apikey/", {"action": "revoke", "_selected_action": [api_key.pk]})

    refused = ApiClient(key).post("/api/v1/search", {"text": "mug"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "revoked_key")
    assert "revoked" in admin.get("/admin/api/apikey/").content.decode()


def test_the_admin_refuses_a_key_without_scope_or_with_a_bad_rate(db):
    User.objects.create_superuser("boss", "boss@shop.example", "a-long-test-password-1")
    admin = Client()
    admin.force_login(User.objects.get(username="boss"))
    for fields in ({"scopes": []}, {"scopes": ["search"], "rate": "lots"}, {"scopes": ["search"], "rate": "0/minute"}):
        body = {"name": "x", "rate": "", "expires_at_0": "", "expires_at_1": "", **fields}
        response = admin.post("/admin/api/apikey/add/", body)
        assert response.status_code == 200 and b"errorlist" in response.content
    assert ApiKey.objects.count() == 0


def test_a_key_with_a_rate_of_nothing_is_refused(db):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        api_key_create(name="x", scopes=["search"], rate="0/minute")
    assert ApiKey.objects.count() == 0


def test_the_command_prints_a_working_key(catalog):
    out = io.StringIO()
    call_command(
        "create_api_key", "backend", "--scope", "catalog:write", "--days", "30", stdout=out, stderr=io.StringIO()
    )
    key = out.getvalue().strip()
    api_key = ApiKey.objects.get(name="backend")
    assert api_key.scopes == ["catalog:write"]
    assert timedelta(days=29) < api_key.expires_at - timezone.now() <= timedelta(days=30)
    assert ApiClient(key).put("/api/v1/products/sku-9", PRODUCT).status_code == 201


def test_health_needs_no_key_and_unknown_api_paths_answer_json(db):
    assert Client().get("/api/v1/health").status_code == 200
    response = Client().get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    wrong_method = ApiClient(api_key_for("search")).delete("/api/v1/search")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"


def test_health_checks_the_database_and_the_cache(transactional_db, settings):
    """A load balancer's view: ok; degraded (200) with the cache down; 503 with the database
    failing (here: the table it reads moved away, a real database error)."""
    from django.db import connection

    from tests.live import free_port

    body = Client().get("/api/v1/health").json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "cache": "ok", "broker": "in-process", "index": "ok", "model": "ok"}
    assert {"pending", "indexed", "failed"} <= set(body)

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        }
    }
    degraded = Client().get("/api/v1/health")
    assert degraded.status_code == 200
    assert degraded.json()["status"] == "degraded" and degraded.json()["checks"]["cache"] == "unavailable"

    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE catalog_productimage RENAME TO catalog_productimage_away")
    try:
        down = Client().get("/api/v1/health")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE catalog_productimage_away RENAME TO catalog_productimage")
    assert down.status_code == 503 and down["Retry-After"]
    assert down.json()["status"] == "unavailable" and down.json()["checks"]["database"] == "unavailable"

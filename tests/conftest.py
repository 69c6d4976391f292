from __future__ import annotations

import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.cache import cache

from embeddings.index import reset_index
from tests.shops import snapshot_build, snapshot_restore


@pytest.fixture(autouse=True)
def isolated_storage(settings, tmp_path):
    """Every test gets its own media folder and its own embedded vector store."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.QDRANT_LOCAL_PATH = tmp_path / "qdrant"
    settings.QDRANT_URL = ""
    reset_index()
    cache.clear()  # throttling counts and cached query vectors (ids are reused between tests)
    yield
    reset_index()


@pytest.fixture
def sent_signals():
    """What the catalog's signals carried during the test: [(signal name, kwargs)]."""
    from catalog import signals

    sent: list[tuple[str, dict]] = []
    receivers = {}
    for name in ("images_added", "images_removed", "products_changed"):

        def receiver(sender, signal, name=name, **kwargs):
            sent.append((name, kwargs))

        receivers[name] = receiver
        getattr(signals, name).connect(receiver)
    yield sent
    for name, receiver in receivers.items():
        getattr(signals, name).disconnect(receiver)


@contextlib.contextmanager
def workers_absent():
    """As with a broker and no worker running: queued tasks wait (new images stay pending),
    for the tests that then run a task themselves."""
    from searchsite.celery import app

    app.conf.task_always_eager = False
    try:
        yield
    finally:
        app.conf.task_always_eager = True


@pytest.fixture
def no_worker():
    with workers_absent():
        yield


# Demo shops are built once per run and restored for each test that uses one (tests/shops.py).
SMALL_SHOP = {"products": 60, "seed": 11}
QUALITY_SHOP = {"products": 150, "seed": 21}


@pytest.fixture(scope="session")
def small_shop_snapshot(django_db_setup, django_db_blocker, tmp_path_factory):
    folder = tmp_path_factory.mktemp("small-shop")
    return snapshot_build(folder, django_db_blocker, judgments=False, **SMALL_SHOP)


@pytest.fixture(scope="session")
def quality_shop_snapshot(django_db_setup, django_db_blocker, tmp_path_factory):
    folder = tmp_path_factory.mktemp("quality-shop")
    return snapshot_build(folder, django_db_blocker, judgments=True, **QUALITY_SHOP)


@pytest.fixture
def small_shop(small_shop_snapshot, transactional_db, settings):
    """A fresh copy of the 60-product demo shop (rows, photos, vectors, cutoffs, taxonomy);
    its products in id order."""
    from catalog.models import Product

    snapshot_restore(small_shop_snapshot, settings)
    return list(Product.objects.order_by("pk"))


@pytest.fixture
def quality_shop(quality_shop_snapshot, transactional_db, settings):
    """A fresh copy of the 150-product demo shop; its judged queries' file."""
    snapshot_restore(quality_shop_snapshot, settings)
    return quality_shop_snapshot.judgments


def stored_files(settings) -> list:
    root = settings.MEDIA_ROOT
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


class ApiClient:
    """Django's test client, sending an API key (``key=None``: none) and JSON bodies."""

    def __init__(self, key: str | None):
        from django.test import Client

        self.client = Client()
        self.key = key

    def _headers(self, headers: dict | None) -> dict:
        base = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        return {**base, **(headers or {})}

    def get(self, path: str, params: dict | None = None, headers: dict | None = None, **extra):
        return self.client.get(path, params or {}, headers=self._headers(headers), **extra)

    def delete(self, path: str, headers: dict | None = None):
        return self.client.delete(path, headers=self._headers(headers))

    def send(self, method: str, path: str, body=None, headers: dict | None = None, **extra):
        import json

        call = getattr(self.client, method.lower())
        return call(
            path, data=json.dumps(body), content_type="application/json", headers=self._headers(headers), **extra
        )

    def post(self, path: str, body=None, headers: dict | None = None, **extra):
        return self.send("POST", path, body, headers, **extra)

    def put(self, path: str, body=None, headers: dict | None = None):
        return self.send("PUT", path, body, headers)

    def patch(self, path: str, body=None, headers: dict | None = None):
        return self.send("PATCH", path, body, headers)

    def multipart(self, path: str, data: dict, headers: dict | None = None):
        return self.client.post(path, data, headers=self._headers(headers))


def api_key_for(*scopes: str, **fields) -> str:
    from api.keys import api_key_create

    return api_key_create(name="test", scopes=list(scopes), **fields).key


@pytest.fixture
def api(db):
    """A client with a key holding both scopes."""
    return ApiClient(api_key_for("search", "catalog:write"))


@pytest.fixture
def search_api(db):
    """A client with a search-only key (what a storefront gets)."""
    return ApiClient(api_key_for("search"))


@pytest.fixture
def photo_server(settings):
    """An HTTP server on loopback serving ``server.photos`` ({path: bytes}) and counting requests
    per path in ``server.hits``; /to?url=X redirects to X.
    The fetcher is allowed to reach it (and nothing else private)."""
    photos: dict[str, bytes] = {}
    hits: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits[self.path] = hits.get(self.path, 0) + 1
            if self.path.startswith("/to?url="):
                self.send_response(302)
                self.send_header("Location", self.path.removeprefix("/to?url="))
                self.end_headers()
                return
            body = photos.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.VITRINE_FETCH_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # only this test server, on loopback
    server.photos = photos
    server.hits = hits
    server.base = f"http://127.0.0.1:{server.server_port}"
    yield server
    server.shutdown()
    server.server_close()

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.cache import cache

from embeddings.index import reset_index


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
    from catalog.api_keys import api_key_create

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

from __future__ import annotations

import contextlib
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.core.cache import cache

from embeddings.index import reset_index
from embeddings.outbox import broker_outage_forget
from embeddings.relevance import cutoffs_forget
from embeddings.search.rules import rules_forget
from embeddings.search.understanding import vocabulary_forget
from embeddings.spaces import live_space_forget
from searchsite.caching import cache_outage_forget
from tests.live import SCHEMA_TEMPLATE_PRODUCTS, TEMPLATE_PRODUCTS, LiveVitrine, template_build
from tests.shops import snapshot_restore, snapshot_shared


def pytest_itemcollected(item):
    """Mark the tests that use the test database: ``make test`` runs them on PostgreSQL too."""
    if item.get_closest_marker("django_db") or {"db", "transactional_db"} & set(item.fixturenames):
        item.add_marker(pytest.mark.database)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Start the longest tests first, so that the test processes finish together."""

    def weight(item) -> int:
        # The schemathesis run first (it builds the live servers' template), the end-to-end
        # tests meanwhile (they need no template), then the other live servers' tests.
        group = item.get_closest_marker("xdist_group")
        if item.get_closest_marker("schemathesis"):
            return 0
        if group and group.args[0] == "end-to-end":
            return 1
        for rank, marker in enumerate(("live", "slow"), start=2):
            if item.get_closest_marker(marker):
                return rank
        return 4

    items.sort(key=weight)  # stable: each group keeps its own order


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One torch thread in the test process: the suite runs servers and workers beside it."""
    from django.conf import settings

    settings.VITRINE_TORCH_THREADS = 1


@pytest.fixture(autouse=True)
def isolated_storage(settings, tmp_path):
    """Every test gets its own media folder and its own embedded vector store."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.VITRINE_INDEX_PATH = tmp_path / "index"
    settings.QDRANT_URL = ""
    settings.VITRINE_INDEX_SERVER = ""
    reset_index()
    live_space_forget()  # each test's database has its own live space
    vocabulary_forget()  # and its own catalog
    cutoffs_forget()  # and its own cutoffs
    rules_forget()  # and its own merchandising rules
    cache.clear()  # throttling counts and cached query vectors (ids are reused between tests)
    cache_outage_forget()  # a test that stopped the cache does not leave it skipped
    broker_outage_forget()  # nor the broker
    yield
    reset_index()
    live_space_forget()


@pytest.fixture(autouse=True)
def analytics_written_by_the_test():
    """Search analytics are buffered and written by a background thread (analytics.recorder);
    in tests the thread is off, and a test that reads them calls ``recorder.flush()`` in its
    own thread and transaction. What a test left waiting is forgotten."""
    from analytics import recorder

    recorder.background_writes(False)
    yield
    recorder.background_writes(False)


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


def shared_folder(tmp_path_factory, worker_id: str) -> Path:
    """A folder every test process of this run sees (pytest-xdist gives each its own temp)."""
    return tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent


@pytest.fixture(scope="session")
def small_shop_snapshot(django_db_setup, django_db_blocker, tmp_path_factory, worker_id):
    folder = shared_folder(tmp_path_factory, worker_id) / "small-shop"
    return snapshot_shared(folder, django_db_blocker, judgments=False, **SMALL_SHOP)


@pytest.fixture(scope="session")
def quality_shop_snapshot(django_db_setup, django_db_blocker, tmp_path_factory, worker_id):
    folder = shared_folder(tmp_path_factory, worker_id) / "quality-shop"
    return snapshot_shared(folder, django_db_blocker, judgments=True, **QUALITY_SHOP)


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


def shared_template(tmp_path_factory, worker_id: str, name: str, products: int) -> Path:
    """A template data dir for live servers (tests/live.py), built once per run, also when
    the run is spread over several processes (the first that needs it builds it)."""
    from filelock import FileLock

    shared = shared_folder(tmp_path_factory, worker_id)
    folder = shared / name
    with FileLock(str(shared / f"{name}.lock")):
        if not (shared / f"{name}.ready").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            template_build(folder, products)
            (shared / f"{name}.ready").touch()
    return folder


@pytest.fixture(scope="session")
def live_template(tmp_path_factory, worker_id):
    """The browser's and the API example's data dir: the 96-product demo shop."""
    return shared_template(tmp_path_factory, worker_id, "live-template", TEMPLATE_PRODUCTS)


@pytest.fixture(scope="session")
def schema_template(tmp_path_factory, worker_id):
    """The schemathesis run's data dir: a 24-product demo shop (quicker to build)."""
    return shared_template(tmp_path_factory, worker_id, "schema-template", SCHEMA_TEMPLATE_PRODUCTS)


def live_api_start(template: Path, data_dir: Path, **env: str) -> LiveVitrine:
    """A live Vitrine with a key holding both scopes and a rate no test reaches: its
    ``url``, ``key``, ``data_dir`` and ``log``."""
    live = LiveVitrine.from_template(template, data_dir, **env)
    live.start()
    # While the server starts (and loads the model): the key, as a deployment would make it.
    live.key = live.manage(
        "create_api_key", "tests", "--scope", "search", "--scope", "catalog:write", "--rate", "1000000/second"
    ).strip()
    live.wait()
    return live


@pytest.fixture(scope="session")
def live_api(live_template, tmp_path_factory):
    """A live Vitrine for the API example's tests (``live_api_start``)."""
    live = live_api_start(live_template, tmp_path_factory.mktemp("live-api"))
    try:
        yield live
    finally:
        live.stop()


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


@pytest.fixture(scope="session")
def standin_server():
    from tests.standin_openai import StandIn

    server = StandIn(slow_seconds=2.0).start()
    yield server
    server.stop()


@pytest.fixture
def standin(standin_server, settings):
    """The stand-in OpenAI-compatible API (tests/standin_openai.py), both services pointed at
    it, with a fresh script and request log; retries back off briefly."""
    standin_server.reset()
    settings.VITRINE_CAPTION_API_URL = standin_server.url
    settings.VITRINE_CAPTION_API_KEY = "sk-caption-test"
    settings.VITRINE_CAPTION_MODEL = "vision-test"
    settings.VITRINE_IMAGE_API_URL = standin_server.url
    settings.VITRINE_IMAGE_API_KEY = "sk-image-test"
    settings.VITRINE_IMAGE_MODEL = "image-test"
    settings.VITRINE_IMAGE_SIZE = "256x256"
    yield standin_server
    standin_server.reset()

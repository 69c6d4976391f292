"""Outages answered clearly: a vector store that accepts connections and never answers
(a Qdrant server, or the index server) costs a search about VITRINE_INDEX_READ_TIMEOUT,
then the circuit breaker answers 503 at once; health says which dependency is down;
liveness stays up. The database, broker and Redis outages are the chaos suite's
(tests/test_chaos.py), with the real servers stopped."""

from __future__ import annotations

import re
import socket
import sys
import threading
import time
import traceback

import pytest
from django.test import Client

from embeddings.index import IndexUnavailable, get_index, reset_index
from embeddings.index.breaker import Breaker

pytestmark = pytest.mark.django_db


@pytest.fixture
def hung_server():
    """A TCP server on loopback that accepts every connection and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(connection)  # read nothing, answer nothing

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    for connection in held:
        connection.close()
    listener.close()


@pytest.mark.parametrize("setting", ["QDRANT_URL", "VITRINE_INDEX_SERVER"])
def test_a_store_that_never_answers_gives_503s_in_about_a_second_then_at_once(settings, hung_server, setting, api):
    from embeddings.model import get_encoder

    settings.QDRANT_TIMEOUT = 30  # the writes' timeout: a search must not wait for it
    settings.VITRINE_INDEX_READ_TIMEOUT = 1
    settings.VITRINE_INDEX_BREAKER_FAILURES = 2
    settings.VITRINE_INDEX_BREAKER_SECONDS = 60
    setattr(settings, setting, f"http://{hung_server}" if setting == "QDRANT_URL" else hung_server)
    reset_index()
    get_encoder().texts_encode(["warm the model"])  # time the store, not the model's first load

    timings = []
    for _ in range(2):
        started = time.monotonic()
        page = Client().get("/", {"q": "striped mug"})
        timings.append(time.monotonic() - started)
        assert page.status_code == 503 and page["Retry-After"]
        assert "did not answer" in page.content.decode() or "unavailable" in page.content.decode().lower()
    assert all(0.9 <= seconds < 10 for seconds in timings), timings  # the read timeout, not QDRANT_TIMEOUT's 30

    # The breaker is open: no more waiting, for the page, the API and readiness alike.
    started = time.monotonic()
    found = api.post("/api/v1/search", {"text": "striped mug"})
    assert time.monotonic() - started < 0.9
    assert found.status_code == 503 and found["Retry-After"]
    assert found.json()["error"]["code"] == "index_unavailable"
    assert "not asking it again" in found.json()["error"]["message"]
    ready = Client().get("/api/v1/health/ready")
    assert ready.status_code == 503 and ready["Retry-After"]
    assert ready.json()["checks"]["index"] == "unavailable" and ready.json()["status"] == "unavailable"
    assert Client().get("/api/v1/health").json()["checks"]["index"] == "unavailable"
    live = Client().get("/api/v1/health/live")
    assert live.status_code == 200 and live.json() == {"status": "ok"}


def test_readiness_says_ok_when_everything_answers():
    ready = Client().get("/api/v1/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "database": "ok",
        "cache": "ok",
        "broker": "in-process",
        "index": "ok",
        "model": "ok",
    }


def test_the_breaker_opens_after_failures_in_a_row_lets_one_call_try_then_closes():
    now = [0.0]
    breaker = Breaker(failures=2, reset_seconds=10, clock=lambda: now[0])
    breaker.before("store")
    breaker.failed(IndexUnavailable("timed out"))
    breaker.succeeded()  # a success in between: the count starts again
    breaker.failed(IndexUnavailable("timed out"))
    breaker.before("store")  # one failure in a row: still closed
    breaker.failed(IndexUnavailable("timed out"))
    assert breaker.is_open
    with pytest.raises(IndexUnavailable, match="failed 2 times in a row .timed out.; not asking it again for 10 s"):
        breaker.before("store")
    now[0] = 10.5
    breaker.before("store")  # half open: this one tries...
    with pytest.raises(IndexUnavailable):
        breaker.before("store")  # ...and the others still fail at once meanwhile
    breaker.failed(IndexUnavailable("still down"))
    with pytest.raises(IndexUnavailable, match="still down"):
        breaker.before("store")  # open again
    now[0] = 21
    breaker.before("store")
    breaker.succeeded()
    assert not breaker.is_open
    breaker.before("store")  # closed: every call goes through


def test_an_index_server_with_another_key_is_refused_without_reading_its_messages(settings, tmp_path):
    """Its messages are signed with SECRET_KEY's derivative: a process of another
    deployment (or anyone else) is cut off before anything is unpickled."""
    from embeddings.index import open_local
    from embeddings.index.remote import IndexServer

    server = IndexServer(("127.0.0.1", 0), open_local())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings.VITRINE_INDEX_SERVER = f"127.0.0.1:{server.server_address[1]}"
        reset_index()
        assert get_index().alias_target() is None  # the same key: served
        settings.SECRET_KEY = "another deployment's key"
        reset_index()
        with pytest.raises(IndexUnavailable, match="index server .* failed"):
            get_index().alias_target()
    finally:
        server.shutdown()
        server.server_close()
        server.index.close()


def test_an_index_server_call_that_holds_the_store_is_logged(settings, monkeypatch, caplog):
    """Searches queue behind a long write (the embedded store serves one call at a time)
    and may time out: the operator's log says which call kept them waiting."""
    from embeddings.index import open_local, remote
    from embeddings.index.remote import IndexServer

    monkeypatch.setattr(remote, "SLOW_CALL_SECONDS", 0.3)
    server = IndexServer(("127.0.0.1", 0), open_local())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings.VITRINE_INDEX_SERVER = f"127.0.0.1:{server.server_address[1]}"
        reset_index()
        get_index().alias_target()
        assert "Index server:" not in caplog.text  # a quick call is not logged
        with server.index._lock:  # a write holding the store
            waiting = threading.Thread(target=get_index().alias_target)
            waiting.start()
            time.sleep(0.6)
        waiting.join(10)
        assert re.search(r"Index server: alias_target took 0\.[6-9] s|took [1-9]", caplog.text), caplog.text
    finally:
        server.shutdown()
        server.server_close()
        server.index.close()


def test_serve_index_refuses_a_bad_address_and_a_deployment_with_qdrant(settings):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="--bind: 'nowhere' is not host:port"):
        call_command("serve_index", "--bind", "nowhere")
    settings.QDRANT_URL = "http://qdrant:6333"
    with pytest.raises(CommandError, match="nothing to serve"):
        call_command("serve_index")


@pytest.fixture
def fresh_warm_up(monkeypatch):
    """This process as if it had just started: no warm-up yet, no model loaded."""
    from embeddings import warmup
    from embeddings.model import reset_encoder

    monkeypatch.setattr(warmup, "_thread", None)
    monkeypatch.setattr(warmup, "_failure", "")
    reset_encoder()
    yield warmup
    warmup.wait(120)
    reset_encoder()


@pytest.mark.django_db
def test_readiness_says_loading_while_a_fresh_process_warms_up_then_ok(fresh_warm_up):
    from embeddings import model

    with model._encoder_lock:  # the model's loader waits here, as it would during a slow load
        fresh_warm_up.start()
        time.sleep(0.2)
        ready = Client().get("/api/v1/health/ready")
        assert ready.status_code == 503 and ready.headers["Retry-After"]
        assert ready.json()["checks"]["model"] == "loading" and ready.json()["status"] == "unavailable"
        assert Client().get("/api/v1/health/live").status_code == 200
    assert fresh_warm_up.wait(120) == "ok"
    assert model._encoders, "the warm-up loaded the model"
    ready = Client().get("/api/v1/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["model"] == "ok"


@pytest.mark.django_db
def test_readiness_says_unavailable_when_the_model_cannot_be_loaded(fresh_warm_up, settings, tmp_path):
    settings.VITRINE_CLIP_PRETRAINED = f"local-dir:{tmp_path / 'nothing'}"
    fresh_warm_up.start()
    assert fresh_warm_up.wait(120) == "unavailable"
    ready = Client().get("/api/v1/health/ready")
    assert ready.status_code == 503 and ready.headers["Retry-After"]
    assert ready.json()["checks"]["model"] == "unavailable"


def test_a_slow_request_is_logged_with_where_it_hangs(transactional_db, settings, hung_server, caplog):
    """The operator's view of a page that hangs: a line naming the request and its stack,
    while it runs (the shopper may have given up), and one when it ends."""
    from embeddings.model import get_encoder
    from searchsite import watchdog

    get_encoder().texts_encode(["warm the model"])  # the request is to wait for the index only
    settings.VITRINE_SLOW_REQUEST_SECONDS = 1000  # only this test's own look reports it
    settings.VITRINE_INDEX_SERVER = hung_server
    settings.VITRINE_INDEX_READ_TIMEOUT = 3
    reset_index()
    answers = []
    thread = threading.Thread(target=lambda: answers.append(Client().get("/", {"q": "striped mug"})))
    with caplog.at_level("WARNING", logger="searchsite.slow"):
        thread.start()
        deadline = time.monotonic() + 60
        while not any("GET /" in what for _, what, _ in watchdog._in_flight.values()):
            assert time.monotonic() < deadline and thread.is_alive(), "the request never started"
            time.sleep(0.01)
        # Look once it waits for the index (a look earlier would show it importing, say).
        while "remote.py" not in "".join(traceback.format_stack(sys._current_frames().get(thread.ident))):
            assert time.monotonic() < deadline and thread.is_alive(), "the request never asked the index"
            time.sleep(0.01)
        logged = watchdog.slow_requests_report(now=time.monotonic() + 1000)
        thread.join(60)
    assert answers[0].status_code == 503
    assert len(logged) == 1 and "Slow request: GET / running for" in logged[0]
    assert "embeddings/index/remote.py" in logged[0]  # where it waits: the index's answer
    assert watchdog.slow_requests_report(now=time.monotonic() + 1000) == []  # once, and it is over
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Slow request: GET /") for m in messages)
    assert any(m.startswith("Slow request finished: GET / in") for m in messages)

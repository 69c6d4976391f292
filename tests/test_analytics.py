"""Search analytics: what a search on the page and through the API records (and what it
never does), clicks and the events API, the buffered writer, and pruning."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.utils import timezone

from analytics import recorder, services, tasks
from analytics.models import SearchEvent, SearchRecord
from catalog.models import Product
from tests.conftest import ApiClient, api_key_for


def records() -> list[SearchRecord]:
    recorder.flush()
    return list(SearchRecord.objects.order_by("created_at", "pk"))


def page_search_id(html: str) -> str:
    found = set(re.findall(r'data-search="([0-9a-f]+)"', html))
    assert len(found) == 1, found
    return found.pop()


def a_search(**fields) -> SearchRecord:
    values = {
        "query": "mug",
        "kind": "text",
        "source": "page",
        "result_count": 3,
        "zero_results": False,
        "latency_ms": 20.0,
        **fields,
    }
    return SearchRecord.objects.create(**values)


# --- Capture --------------------------------------------------------------------------------


def test_a_page_search_records_one_row_with_its_facts_and_the_links_carry_its_id(small_shop):
    response = Client().get("/", {"q": "  Red   STRIPED mug "}, headers={"Accept-Language": "en"})

    assert response.status_code == 200
    html = response.content.decode()
    [row] = records()
    assert (row.query, row.language, row.kind, row.source) == ("red striped mug", "en", "text", "page")
    assert row.result_count == response.context["result"].total > 0
    assert row.zero_results is False
    assert 0 < row.latency_ms < 60_000
    assert row.engine_version.startswith(f"{recorder.ENGINE_VERSION} {response.context['result'].embedding_space}")
    assert page_search_id(html) == row.search_id
    # Each result link names its product and its 1-based position.
    cards = re.findall(r'data-search="[0-9a-f]+" data-product="(\d+)" data-position="(\d+)"', html)
    assert [int(position) for _, position in cards] == list(range(1, len(cards) + 1))
    assert int(cards[0][0]) == response.context["result"].hits[0].product.pk


def test_a_chinese_page_search_with_nothing_relevant_is_recorded_as_zero_results_in_zh_hans(small_shop):
    response = Client().get("/", {"q": "潜水艇"}, headers={"Accept-Language": "zh-CN,zh;q=0.9"})

    assert response.status_code == 200
    [row] = records()
    assert (row.query, row.language, row.kind) == ("潜水艇", "zh-hans", "text")
    assert response.context["result"].total == row.result_count == 0
    assert row.zero_results is True


def test_the_second_page_s_positions_continue_from_the_first(small_shop):
    html = Client().get("/", {"q": "mug", "loose": "3", "page": "2"}).content.decode()

    positions = [int(p) for p in re.findall(r'data-position="(\d+)"', html)]
    assert positions and positions[0] == 25  # PAGE_SIZE 24: the second page starts at 25


def test_photo_searches_record_their_kind_and_words_and_the_upload_itself_records_nothing(small_shop):
    photo = small_shop[7].images.first().file.read()
    client = Client()

    alone = client.post("/", {"image": SimpleUploadedFile("me.jpg", photo, "image/jpeg")})
    with_words = client.post("/", {"image": SimpleUploadedFile("me.jpg", photo, "image/jpeg"), "q": "In  RED"})
    assert records() == []  # the POSTs stored the photo and redirected: no search yet
    client.get(alone["Location"])
    client.get(with_words["Location"])

    assert [(row.kind, row.query) for row in records()] == [("photo", ""), ("photo+words", "in red")]


def test_more_like_this_and_the_product_page_record_similar_searches(small_shop):
    product = small_shop[3]

    Client().get("/", {"similar": product.pk})
    Client().get(f"/products/{product.pk}/")

    assert [(row.kind, row.query, row.source) for row in records()] == [("similar", "", "page")] * 2


def test_an_api_search_records_one_row_and_answers_its_search_id(small_shop):
    api = ApiClient(api_key_for("search"))

    body = api.post("/api/v1/search", {"text": "蓝色 杯子"}).json()
    similar = api.get(f"/api/v1/products/{small_shop[0].external_id}/similar").json()

    first, second = records()
    assert body["search_id"] == first.search_id and len(first.search_id) == 24
    assert (first.query, first.language, first.kind, first.source) == ("蓝色 杯子", "zh", "text", "api")
    assert (first.result_count, first.zero_results) == (body["total"], body["total"] == 0)
    assert similar["search_id"] == second.search_id
    assert (second.kind, second.language) == ("similar", "")


def test_nothing_is_recorded_and_no_id_is_handed_out_with_analytics_off(small_shop, settings):
    settings.VITRINE_ANALYTICS = False

    html = Client().get("/", {"q": "mug"}).content.decode()
    body = ApiClient(api_key_for("search")).post("/api/v1/search", {"text": "mug"}).json()

    assert records() == []
    assert "data-search=" not in html
    assert body["search_id"] == ""


def test_nothing_personal_is_stored(small_shop):
    """No column holds the shopper's address, browser or language header: the table has no
    such field, and no value written is the one sent."""
    address, agent = "203.0.113.77", "TestBrowser/9.9 (unique-agent-string)"
    client = Client(REMOTE_ADDR=address, HTTP_USER_AGENT=agent, HTTP_X_FORWARDED_FOR=address)
    client.cookies["sessionid"] = "cookie-value-123"

    html = client.get("/", {"q": "mug"}).content.decode()
    search_id = page_search_id(html)
    client.post("/events/click", {"search": search_id, "product": small_shop[0].pk, "position": 1})

    recorder.flush()
    for model in (SearchRecord, SearchEvent):
        names = {field.name for field in model._meta.get_fields()}
        assert not names & {"ip", "ip_address", "address", "user", "user_id", "session", "user_agent", "cookie"}
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {model._meta.db_table}")  # noqa: S608 - a model's own table
            values = [str(value) for row in cursor.fetchall() for value in row]
        assert values, model
        for secret in (address, agent, "cookie-value-123"):
            assert not any(secret in value for value in values), (model, secret)


# --- Clicks on the page ------------------------------------------------------------------------


def test_a_click_on_the_page_is_recorded_with_its_position_also_while_its_search_is_buffered(small_shop):
    client = Client(enforce_csrf_checks=True)  # as a beacon: no CSRF token
    search_id = page_search_id(client.get("/", {"q": "mug"}).content.decode())
    assert recorder.buffered_count() == 1  # not written yet

    response = client.post("/events/click", {"search": search_id, "product": small_shop[2].pk, "position": 3})

    assert response.status_code == 204
    [event] = SearchEvent.objects.all()
    assert (event.search.search_id, event.type, event.product_id, event.position) == (
        search_id,
        "click",
        small_shop[2].pk,
        3,
    )


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"search": "0123456789abcdef01234567", "product": "PRODUCT", "position": "1"}, 422, "unknown_search"),
        ({"search": "SEARCH", "product": "999999", "position": "1"}, 422, "unknown_product"),
        ({"search": "SEARCH", "product": "PRODUCT", "position": "0"}, 400, "invalid"),
        ({"search": "SEARCH", "product": "PRODUCT", "position": "-2"}, 400, "invalid"),
        ({"search": "SEARCH", "product": "a mug", "position": "1"}, 400, "invalid"),
    ],
)
def test_the_click_endpoint_refuses_what_is_not_a_click_in_the_one_error_shape(db, fields, status, code):
    product = Product.objects.create(external_id="p1", title="Mug")
    search = a_search()
    fields = {
        name: value.replace("SEARCH", search.search_id).replace("PRODUCT", str(product.pk))
        for name, value in fields.items()
    }

    response = Client().post("/events/click", fields)

    assert response.status_code == status
    body = response.json()
    assert body["error"]["code"] == code and body["error"]["message"]
    assert SearchEvent.objects.count() == 0


def test_the_click_endpoint_takes_only_small_posts(db):
    search = a_search()
    product = Product.objects.create(external_id="p1", title="Mug")

    assert Client().get("/events/click").status_code == 405
    too_long = {"search": search.search_id, "product": product.pk, "position": 1, "padding": "x" * 600}
    assert Client().post("/events/click", too_long).status_code == 413
    assert SearchEvent.objects.count() == 0


def test_a_search_takes_at_most_a_bounded_number_of_events(db):
    search = a_search()
    product = Product.objects.create(external_id="p1", title="Mug")
    SearchEvent.objects.bulk_create(
        [SearchEvent(search=search, type="click", product=product, position=1)] * services.MAX_EVENTS_PER_SEARCH
    )

    response = Client().post("/events/click", {"search": search.search_id, "product": product.pk, "position": 1})

    assert response.status_code == 429
    assert SearchEvent.objects.count() == services.MAX_EVENTS_PER_SEARCH


# --- The events API ---------------------------------------------------------------------------


@pytest.fixture
def product(db):
    return Product.objects.create(external_id="mug-1", title="Mug")


@pytest.mark.parametrize("scope", ["search", "catalog:write"])
def test_the_events_api_records_clicks_carts_and_purchases(product, scope):
    api = ApiClient(api_key_for(scope))
    search = a_search(source="api")

    answers = [
        api.post("/api/v1/events", {"type": "click", "search_id": search.search_id, "product": "mug-1", "position": 3}),
        api.post("/api/v1/events", {"type": "add_to_cart", "search_id": search.search_id, "product": "mug-1"}),
        api.post("/api/v1/events", {"type": "purchase", "search_id": search.search_id, "product": "mug-1"}),
    ]

    assert [answer.status_code for answer in answers] == [204, 204, 204]
    events = SearchEvent.objects.order_by("pk").values_list("type", "product__external_id", "position")
    assert list(events) == [("click", "mug-1", 3), ("add_to_cart", "mug-1", None), ("purchase", "mug-1", None)]


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"type": "click", "search_id": "0" * 24, "product": "mug-1"}, 422, "unknown_search", "search_id"),
        ({"type": "view", "search_id": "SEARCH", "product": "mug-1"}, 400, "invalid", "type"),
        ({"type": "click", "search_id": "SEARCH", "product": "no-such"}, 422, "unknown_product", "product"),
        ({"type": "click", "search_id": "SEARCH", "product": "mug-1", "position": 0}, 400, "invalid", "position"),
        ({"type": "click", "search_id": "SEARCH", "product": "mug-1", "user": "u7"}, 400, "invalid", "user"),
        ({"type": "click", "product": "mug-1"}, 400, "invalid", "search_id"),
    ],
)
def test_the_events_api_refuses_bad_events_in_the_one_error_shape(product, body, status, code, field):
    search = a_search()
    body = {name: (search.search_id if value == "SEARCH" else value) for name, value in body.items()}

    response = ApiClient(api_key_for("search")).post("/api/v1/events", body)

    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert field in error["fields"]
    assert SearchEvent.objects.count() == 0


def test_the_events_api_needs_a_key_and_says_when_analytics_are_off(product, settings):
    search = a_search()
    body = {"type": "click", "search_id": search.search_id, "product": "mug-1"}
    assert ApiClient(None).post("/api/v1/events", body).status_code == 401

    settings.VITRINE_ANALYTICS = False
    response = ApiClient(api_key_for("search")).post("/api/v1/events", body)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "analytics_off"
    assert SearchEvent.objects.count() == 0


# --- The buffered writer ------------------------------------------------------------------------


class FakePage:
    kind, total, embedding_space, fusion, took_ms = "text", 2, "space@1", "rrf", 1.0


def test_rows_wait_in_the_buffer_until_flushed_and_the_oldest_go_when_it_is_full(db, monkeypatch):
    monkeypatch.setattr(recorder, "MAX_BUFFERED", 3)
    dropped = recorder.dropped_count()

    ids = [recorder.search_record(page=FakePage(), query=f"q{n}", language="en", source="api") for n in range(5)]

    assert SearchRecord.objects.count() == 0
    assert recorder.buffered_count() == 3
    assert recorder.dropped_count() == dropped + 2
    assert recorder.flush() == 3
    assert sorted(SearchRecord.objects.values_list("search_id", flat=True)) == sorted(ids[2:])
    assert recorder.flush() == 0


def test_rows_the_database_refused_wait_for_the_next_flush(db, monkeypatch):
    recorder.search_record(page=FakePage(), query="mug", language="en", source="api")
    from django.db import OperationalError

    def refuse(*args, **kwargs):
        raise OperationalError("the database is away")

    with monkeypatch.context() as patched:
        patched.setattr(SearchRecord.objects, "bulk_create", refuse)
        assert recorder.flush() == 0
    assert recorder.buffered_count() == 1
    assert recorder.flush() == 1
    assert SearchRecord.objects.get().query == "mug"


@pytest.mark.django_db(transaction=True)
def test_the_background_thread_writes_buffered_rows_within_seconds():
    recorder.background_writes(True)
    search_id = recorder.search_record(page=FakePage(), query="lamp", language="", source="api")

    deadline = time.monotonic() + 10
    while not SearchRecord.objects.filter(search_id=search_id).exists():
        assert time.monotonic() < deadline, "the writer thread wrote nothing in 10 s"
        time.sleep(0.1)
    assert recorder.buffered_count() == 0


# --- Retention -------------------------------------------------------------------------------


def test_prune_deletes_searches_and_their_events_past_the_retention_and_keeps_the_rest(db, settings):
    settings.VITRINE_ANALYTICS_DAYS = 30
    product = Product.objects.create(external_id="p1", title="Mug")
    now = timezone.now()
    old = a_search(query="old", created_at=now - timedelta(days=31))
    SearchEvent.objects.create(search=old, type="click", product=product, position=1)
    edge = a_search(query="edge", created_at=now - timedelta(days=29, hours=23))
    recent = a_search(query="recent", created_at=now - timedelta(hours=1))
    SearchEvent.objects.create(search=recent, type="click", product=product, position=2)

    tasks.prune()

    assert set(SearchRecord.objects.values_list("query", flat=True)) == {edge.query, recent.query}
    assert list(SearchEvent.objects.values_list("search__query", flat=True)) == ["recent"]
    assert services.analytics_prune() == 0  # idempotent


def test_prune_is_scheduled_daily_on_a_queue_a_worker_consumes(settings):
    entry = next(e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "analytics.tasks.prune")
    assert entry["schedule"] == 24 * 3600
    assert settings.CELERY_TASK_ROUTES["analytics.tasks.prune"] == {"queue": "maintenance"}


def test_the_events_api_takes_json_only(product):
    search = a_search()
    api = ApiClient(api_key_for("search"))

    response = api.multipart("/api/v1/events", {"type": "click", "search_id": search.search_id, "product": "mug-1"})

    assert response.status_code == 415
    assert "error" in response.json()
    assert SearchEvent.objects.count() == 0

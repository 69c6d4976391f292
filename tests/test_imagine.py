"""The "Imagine it" search (embeddings.imagine) through the search page, the API and the
admin's search preview, against the stand-in image API on loopback (tests/standin_openai.py
draws the demo shop's products from colour, pattern and kind words)."""

from __future__ import annotations

import re
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from analytics import recorder
from analytics.models import SearchRecord
from catalog.models import Product
from embeddings.generative import GenerativeError
from embeddings.imagine import imagine_photo
from tests.conftest import ApiClient, api_key_for

pytestmark = pytest.mark.django_db(transaction=True)

BLUE_DOTTED_VASE = {"colour": "blue", "pattern": "dotted", "kind": "vase"}


def page(response) -> str:
    return response.content.decode()


def result_products(html: str) -> list[Product]:
    ids = [int(pk) for pk in re.findall(r'<a class="card-link" href="/products/(\d+)/"', html)]
    products = Product.objects.in_bulk(ids)
    return [products[pk] for pk in ids]


def looks(product: Product) -> dict:
    return {key: product.attributes[key] for key in ("colour", "pattern", "kind")}


def query_photos(settings) -> list:
    folder = settings.MEDIA_ROOT / "query-photos"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def imagine(client: Client, prompt: str, **fields):
    return client.post("/", {"imagine": prompt, **fields})


# --- The search page --------------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["a blue dotted vase", "一个蓝色圆点花瓶"])
def test_a_described_product_is_drawn_and_the_drawing_finds_it(small_shop, standin, prompt):
    client = Client()

    response = imagine(client, prompt)

    assert response.status_code == 303
    location = response["Location"]
    params = parse_qs(urlsplit(location).query)
    assert params["imagined"] == [prompt] and len(params["photo"][0]) == 32
    (call,) = standin.calls("images")
    assert call.body["prompt"] == prompt and call.body["model"] == "image-test"
    results = client.get(location)
    assert results.status_code == 200
    found = result_products(page(results))
    assert [looks(p) for p in found[:1]] == [BLUE_DOTTED_VASE]
    html = page(results)
    assert f"Drawn for: <q>{prompt}</q>" in html and "drawn by an image model" in html
    assert f'alt="A picture drawn for “{prompt}”"' in html
    assert "Searching with <strong>a drawn picture</strong>" in html
    picture = client.get(f"/search/photos/{params['photo'][0]}.jpg")
    assert picture.status_code == 200 and picture["Content-Type"] == "image/jpeg"


def test_the_same_words_again_are_answered_from_the_cache_without_a_call(small_shop, standin, settings):
    first = imagine(Client(), "a blue dotted vase")
    again = imagine(Client(), "  A BLUE   dotted vase ")

    assert len(standin.calls("images")) == 1
    first_photo = parse_qs(urlsplit(first["Location"]).query)["photo"]
    assert parse_qs(urlsplit(again["Location"]).query)["photo"] == first_photo
    assert len(query_photos(settings)) == 1


def test_a_cached_picture_whose_file_is_gone_is_drawn_again(small_shop, standin, settings):
    imagine(Client(), "a red striped mug")
    for path in (settings.MEDIA_ROOT / "query-photos").iterdir():
        path.unlink()

    response = imagine(Client(), "a red striped mug")

    assert response.status_code == 303 and len(standin.calls("images")) == 2
    assert len(query_photos(settings)) == 1


def test_words_added_to_a_drawn_picture_are_searched_with_it_and_the_link_reloads(small_shop, standin):
    response = imagine(Client(), "a blue dotted vase", q="but in red")

    params = parse_qs(urlsplit(response["Location"]).query)
    assert params["q"] == ["but in red"]
    html = page(Client().get(response["Location"]))  # another browser: the link is shareable
    assert "Searching with <strong>a drawn picture</strong> + <strong>“but in red”</strong>" in html


def test_the_page_offers_imagine_it_only_while_the_image_api_is_set(small_shop, standin, settings):
    html = page(Client().get("/"))
    assert 'id="imagine-form"' in html and "Describe it and we'll draw it" in html
    assert 'name="csrfmiddlewaretoken"' in html.split('id="imagine-form"')[1].split("</form>")[0]

    settings.VITRINE_IMAGE_API_URL = ""
    html = page(Client().get("/"))
    assert "imagine" not in html.lower()


def test_while_off_the_post_is_a_404_and_nothing_is_sent(small_shop, standin, settings):
    settings.VITRINE_IMAGE_API_URL = ""

    response = imagine(Client(), "a blue dotted vase")

    assert response.status_code == 404
    assert standin.requests == [] and query_photos(settings) == []


def test_an_empty_description_is_a_400_in_words_and_nothing_is_sent(small_shop, standin, settings):
    response = imagine(Client(), "   ")

    assert response.status_code == 400
    assert "Describe what you are looking for, and we will draw it." in page(response)
    assert standin.requests == [] and query_photos(settings) == []


@pytest.mark.parametrize(
    ("behaviours", "status", "message"),
    [
        (("500", "500"), 503, "The drawing service is not answering just now."),
        (("slow", "slow"), 503, "The drawing service is not answering just now."),
        (("not_an_image",), 502, "The drawing service sent something that is not a picture."),
        (("empty",), 502, "The drawing service sent something that is not a picture."),
        (("malformed",), 502, "The drawing service sent something that is not a picture."),
        (("401",), 502, "The drawing service would not draw that."),
        (("429", "429"), 429, "Many pictures are being drawn just now."),
    ],
)
def test_a_misbehaving_drawing_service_is_told_in_words_and_stores_nothing(
    small_shop, standin, settings, behaviours, status, message
):
    settings.VITRINE_IMAGE_TIMEOUT = 0.5  # the stand-in's "slow" waits 2 s
    standin.script("images", *behaviours)

    response = imagine(Client(), "a blue dotted vase")

    assert response.status_code == status
    html = page(response)
    assert message in html
    assert "VITRINE_" not in html and "127.0.0.1" not in html
    assert 'id="imagine-panel" open' in html and 'value="a blue dotted vase"' in html
    if status in (429, 503):
        assert int(response["Retry-After"]) >= 1
    else:
        assert "Retry-After" not in response
    assert query_photos(settings) == []
    recorder.flush()
    assert SearchRecord.objects.count() == 0


def test_a_failure_is_not_cached(small_shop, standin):
    standin.script("images", "not_an_image")
    assert imagine(Client(), "a blue dotted vase").status_code == 502

    assert imagine(Client(), "a blue dotted vase").status_code == 303
    assert len(standin.calls("images")) == 2


def _drawing_in_thread(prompt: str) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def draw():
        try:
            outcome["imagined"] = imagine_photo(prompt)
        except GenerativeError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=draw)
    thread.start()
    return thread, outcome


def _until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_two_requests_for_the_same_words_at_once_make_one_call(small_shop, standin, settings):
    standin.script("images", "slow")  # the first drawing takes 2 s
    thread, first = _drawing_in_thread("a blue dotted vase")
    _until(lambda: len(standin.calls("images")) == 1)

    second = imagine_photo("A blue  dotted vase")  # while the first is being drawn
    thread.join()

    assert len(standin.calls("images")) == 1
    assert second.token == first["imagined"].token and second.cached and not first["imagined"].cached
    assert len(query_photos(settings)) == 1


def test_a_request_waiting_for_a_drawing_that_fails_draws_its_own(small_shop, standin, settings):
    settings.VITRINE_IMAGE_TIMEOUT = 0.5
    settings.VITRINE_IMAGE_RETRIES = 0
    standin.script("images", "slow")  # 2 s: the first drawing times out
    thread, first = _drawing_in_thread("a blue dotted vase")
    _until(lambda: len(standin.calls("images")) == 1)

    second = imagine_photo("a blue dotted vase")
    thread.join()

    assert first["error"].code == "timeout"
    assert not second.cached and len(standin.calls("images")) == 2
    assert len(query_photos(settings)) == 1


def test_the_image_budget_spent_is_a_429_with_retry_after_and_no_call(small_shop, standin, settings):
    settings.VITRINE_IMAGE_PER_MINUTE = 1
    assert imagine(Client(), "a blue dotted vase").status_code == 303

    response = imagine(Client(), "a red striped mug")

    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 61
    assert "Many pictures are being drawn just now" in page(response)
    assert len(standin.calls("images")) == 1


def test_imagine_searches_from_one_address_are_paced(small_shop, standin, settings):
    settings.VITRINE_IMAGINE_RATE = "2/minute"
    client = Client(REMOTE_ADDR="198.51.100.7")
    assert imagine(client, " ").status_code == 400  # a slip of the finger is not counted
    assert [imagine(client, f"a {colour} vase").status_code for colour in ("red", "green")] == [303, 303]

    paced = imagine(client, "a blue vase")
    other = imagine(Client(REMOTE_ADDR="198.51.100.8"), "a blue vase")

    assert paced.status_code == 429 and 1 <= int(paced["Retry-After"]) <= 61
    assert "Too many pictures drawn from here just now" in page(paced)
    assert other.status_code == 303
    assert len(standin.calls("images")) == 3


def test_an_imagined_search_is_recorded_with_its_description(small_shop, standin):
    client = Client()
    alone = imagine(client, "A blue dotted vase")
    with_words = imagine(client, "a red striped mug", q="in green")
    recorder.flush()
    assert SearchRecord.objects.count() == 0  # the POSTs drew and redirected: no search yet

    client.get(alone["Location"])
    client.get(with_words["Location"])

    recorder.flush()
    rows = SearchRecord.objects.order_by("created_at", "pk")
    assert [(r.kind, r.query, r.source) for r in rows] == [
        ("imagined", "a blue dotted vase", "page"),
        ("imagined+words", "a red striped mug", "page"),
    ]


# --- The API ----------------------------------------------------------------------------


@pytest.fixture
def search_client(small_shop):
    return ApiClient(api_key_for("search"))


@pytest.mark.parametrize("prompt", ["a blue dotted vase", "一个蓝色圆点花瓶"])
def test_the_api_draws_a_description_and_answers_results_and_the_picture(search_client, standin, prompt):
    response = search_client.post("/api/v1/search", {"imagine": prompt, "limit": 5})

    assert response.status_code == 200, response.content
    body = response.json()
    top = Product.objects.get(external_id=body["results"][0]["external_id"])
    assert looks(top) == BLUE_DOTTED_VASE
    assert body["query_kind"] == "image"
    imagined = body["imagined"]
    assert imagined["prompt"] == prompt and imagined["cached"] is False
    assert re.fullmatch(r"http://testserver/search/photos/[0-9a-f]{32}\.jpg", imagined["image_url"])
    picture = Client().get(urlsplit(imagined["image_url"]).path)
    assert picture.status_code == 200 and picture["Content-Type"] == "image/jpeg"

    again = search_client.post("/api/v1/search", {"imagine": prompt, "text": "vase"}).json()

    assert again["imagined"] == {**imagined, "cached": True}
    assert again["query_kind"] == "image+text"
    assert len(standin.calls("images")) == 1


def test_the_api_takes_imagine_in_a_multipart_body_too(search_client, standin):
    response = search_client.multipart("/api/v1/search", {"imagine": "a blue dotted vase", "limit": "3"})

    assert response.status_code == 200, response.content
    assert response.json()["imagined"]["prompt"] == "a blue dotted vase"


def test_the_api_records_an_imagined_search_with_its_description(search_client, standin):
    body = search_client.post("/api/v1/search", {"imagine": "一个蓝色圆点花瓶"}).json()

    recorder.flush()
    row = SearchRecord.objects.get()
    assert (row.search_id, row.kind, row.query, row.language, row.source) == (
        body["search_id"],
        "imagined",
        "一个蓝色圆点花瓶",
        "zh",
        "api",
    )


def test_while_off_the_api_answers_imagine_off_naming_the_setting_and_sends_nothing(search_client, standin, settings):
    settings.VITRINE_IMAGE_API_URL = ""

    response = search_client.post("/api/v1/search", {"imagine": "a blue dotted vase"})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "imagine_off" and "VITRINE_IMAGE_API_URL" in error["message"]
    assert standin.requests == [] and query_photos(settings) == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"imagine": ""}, 400, "invalid"),
        ({"imagine": "   "}, 400, "invalid"),
        ({"imagine": "a vase", "image_url": "https://example.org/p.jpg"}, 422, "too_many_images"),
        ({"imagine": "a vase", "like": ["no-such-product"]}, 422, "unknown_product"),
    ],
)
def test_an_api_request_that_cannot_be_drawn_is_refused_before_any_call(
    search_client, standin, settings, body, status, code
):
    response = search_client.post("/api/v1/search", body)

    assert response.status_code == status and response.json()["error"]["code"] == code
    assert standin.requests == [] and query_photos(settings) == []


@pytest.mark.parametrize(
    ("behaviours", "status", "code"),
    [
        (("500", "500"), 503, "imagine_server_error"),
        (("slow", "slow"), 503, "imagine_timeout"),
        (("not_an_image",), 502, "imagine_not_an_image"),
        (("empty",), 502, "imagine_malformed_response"),
        (("malformed",), 502, "imagine_malformed_response"),
        (("401",), 502, "imagine_refused"),
        (("429", "429"), 429, "imagine_rate_limited"),
    ],
)
def test_a_misbehaving_image_api_gives_the_api_s_error_and_stores_nothing(
    search_client, standin, settings, behaviours, status, code
):
    settings.VITRINE_IMAGE_TIMEOUT = 0.5
    standin.script("images", *behaviours)

    response = search_client.post("/api/v1/search", {"imagine": "a blue dotted vase"})

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    if status in (429, 503):
        assert int(response["Retry-After"]) >= 1
    assert query_photos(settings) == []


def test_the_api_s_spent_image_budget_is_a_429_with_retry_after(search_client, standin, settings):
    settings.VITRINE_IMAGE_PER_MINUTE = 1
    assert search_client.post("/api/v1/search", {"imagine": "a blue dotted vase"}).status_code == 200

    response = search_client.post("/api/v1/search", {"imagine": "a green striped lamp"})

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "imagine_budget_exhausted"
    assert 1 <= int(response["Retry-After"]) <= 61
    assert len(standin.calls("images")) == 1


# --- The admin's search preview ---------------------------------------------------------

PREVIEW = "/admin/embeddings/merchandisingrule/preview/"


@pytest.fixture
def staff(small_shop):
    from django.contrib.auth.models import User

    client = Client()
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))
    return client


def test_a_merchandiser_previews_a_drawn_description_with_the_picture_shown(staff, standin):
    html = staff.post(PREVIEW, {"imagine": "a blue dotted vase"}).content.decode()

    assert "Drawn for: <q>a blue dotted vase</q>" in html
    first = re.search(r'<th scope="row">1</th>\s*<td><img[^>]*> ([^<]+) <small>\(id (\d+)', html)
    assert looks(Product.objects.get(pk=first.group(2))) == BLUE_DOTTED_VASE
    staff.post(PREVIEW, {"imagine": "a blue dotted vase"})
    assert len(standin.calls("images")) == 1


def test_the_preview_says_why_a_drawing_failed_and_offers_no_description_while_off(staff, standin, settings):
    standin.script("images", "not_an_image")
    html = staff.post(PREVIEW, {"imagine": "a blue dotted vase"}).content.decode()
    assert 'id="id_imagine_errors"' in html and "not a usable picture" in html
    assert ": results in order</caption>" not in html

    settings.VITRINE_IMAGE_API_URL = ""
    html = staff.get(PREVIEW).content.decode()
    assert 'name="imagine"' not in html
    html = staff.post(PREVIEW, {"imagine": "a blue dotted vase"}).content.decode()
    assert "Type words or choose a photo." in html
    assert len(standin.calls("images")) == 1

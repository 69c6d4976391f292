"""The shoppers' pages through Django's test client: search states, photo searches,
thumbnails, product page. (The browser tests drive the same pages in chromium.)"""

from __future__ import annotations

import io
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from catalog import services
from catalog.thumbnails import thumbnail_path
from embeddings.index import IndexUnavailable
from tests import images

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop():
    products = []
    rows = [("kitchen", "Kito", "red"), ("garden", "Nordlys", "blue"), ("kitchen", "Nordlys", "red")]
    for number, (category, brand, colour) in enumerate(rows):
        product = services.product_upsert(
            external_id=f"sku-{number}",
            title=f"Thing {number}",
            category=category,
            brand=brand,
            price=5 + number,
            currency="EUR",
            attributes={"colour": colour},
            url=f"https://shop.example/things/{number}",
        ).product
        services.image_create(product=product, content=images.noise_jpeg(number))
        products.append(product)
    return products


def page(response) -> str:
    return response.content.decode()


def card_titles(html: str) -> list[str]:
    return re.findall(r'<span class="title">([^<]+)</span>', html)


def test_the_empty_page_suggests_queries_in_english_and_chinese_and_shows_no_operator_text():
    response = Client().get("/")
    html = page(response)
    assert response.status_code == 200
    assert "Find products by describing them, or with a photo" in html
    assert 'href="?q=red%20striped%20mug" lang="en"' in html
    assert 'href="?q=%E7%BA%A2%E8%89%B2%E6%9D%A1%E7%BA%B9%E6%9D%AF%E5%AD%90" lang="zh"' in html
    assert "vitrine-demo" not in html and "Model:" not in html, "the model is the operator's business"
    assert '<label class="visually-hidden" for="id_q">' in html and 'capture="environment"' in html


def test_an_untrained_model_is_labelled_as_such_for_the_operator(settings, admin_client):
    settings.VITRINE_CLIP_MODEL = "vitrine-tiny"
    settings.VITRINE_CLIP_PRETRAINED = ""
    html = page(admin_client.get("/admin/index-health/"))
    assert re.search(r'id="model-label">vitrine-tiny \(untrained: random weights', html)


def test_a_text_search_shows_cards_with_webp_thumbnail_title_brand_price_and_score(shop):
    html = page(Client().get("/", {"q": "a thing"}))
    assert sorted(card_titles(html)) == ["Thing 0", "Thing 1", "Thing 2"]
    assert "6.00 EUR" in html and "Nordlys" in html
    assert "match " not in html, "the cosine similarity is for staff"
    image = shop[0].images.get()
    assert f'src="/thumbnails/{image.sha256}-320.webp"' in html
    assert image.file.url not in html, "the grid never loads the full-size file"
    # The photo is part of a link that names the product: its alt is empty, not a repeat.
    # (The link's data-* attributes name the search, product and position: search analytics.)
    card = (
        r'<a class="card-link" href="[^"]+"[^>]*>\s*<img src="[^"]+" alt=""[^>]*>\s*'
        r'<span class="title">Thing 0</span>'
    )
    assert re.search(card, html)
    assert "3 relevant results" in html


def test_facets_count_and_filters_show_as_removable_chips(shop):
    html = page(Client().get("/", {"q": "a thing", "category": "kitchen"}))
    assert sorted(card_titles(html)) == ["Thing 0", "Thing 2"]
    # Category counts ignore the category choice; brand counts respect it.
    assert re.search(r'data-value="garden".*?<span class="count">1<', html, re.S)
    assert re.search(r'data-value="Kito".*?<span class="count">1<', html, re.S)
    assert 'aria-label="Remove filter Category: kitchen"' in html
    chip = re.search(r'<a class="chip" href="([^"]+)" aria-label="Remove filter Category: kitchen"', html)[1]
    assert parse_qs(chip.lstrip("?").replace("&amp;", "&")) == {"q": ["a thing"]}


def test_attribute_facets_use_readable_parameters(shop):
    html = page(Client().get("/", {"q": "a thing", "colour": "red"}))
    assert sorted(card_titles(html)) == ["Thing 0", "Thing 2"]
    assert "Colour: red" in html


def test_filter_links_go_back_to_the_first_page(shop):
    html = page(Client().get("/", {"q": "a thing", "page": "1"}))
    links = re.findall(r'class="facet-value[^"]*" href="([^"]+)"', html)
    assert links and all("page=" not in link for link in links)


def test_no_results_with_filters_suggests_removing_them(shop):
    html = page(Client().get("/", {"q": "a thing", "category": "garden", "brand": "Kito"}))
    assert "Nothing relevant matches with these filters" in html
    assert "Try removing a filter" in html


def test_sort_by_price_high_to_low(shop):
    html = page(Client().get("/", {"q": "a thing", "sort": "-price"}))
    assert card_titles(html) == ["Thing 2", "Thing 1", "Thing 0"]
    assert 'aria-current="true">Price: high to low' in html


def test_like_and_not_this_links_refine_and_offer_the_way_back(shop):
    html = page(Client().get("/", {"q": "a thing", "minus": str(shop[1].pk), "plus": str(shop[0].pk)}))
    assert sorted(card_titles(html)) == ["Thing 0", "Thing 2"]
    assert "fewer like <strong>Thing 1</strong>" in html and "more like <strong>Thing 0</strong>" in html
    assert 'href="?q=a+thing" class="back-link"' in html
    like = r'class="action like" role="button" href="[^"]*" aria-pressed="(\w+)"\s+aria-label="Like Thing 0'
    liked = re.search(like, html)
    assert liked and liked[1] == "true"
    assert re.search(r'aria-pressed="false"\s+aria-label="Like Thing 2', html)


def test_more_like_this_names_the_product(shop):
    html = page(Client().get("/", {"similar": shop[0].pk}))
    assert "Products similar to" in html and "Thing 0" in html
    assert "Thing 0" not in card_titles(html)


def test_a_price_range_typed_the_wrong_way_round_is_read_the_right_way_round(shop):
    response = Client().get("/", {"q": "a thing", "price_min": "5.50", "price_max": "1"})
    html = page(response)
    assert response.status_code == 200
    assert card_titles(html) == ["Thing 0"]  # 5.00 EUR; Thing 1 is 6.00
    assert "Price: 1 – 5.50" in html and re.search(r'id="id_price_min"[^>]*value="1"', html)
    assert "price_max" not in re.sub(r'(name|id|for|href|value)="[^"]*"', "", html)


@pytest.mark.parametrize(
    ("params", "notice"),
    [
        ({"q": "a thing", "page": "abc"}, "That page does not exist, so the first page is shown."),
        ({"q": "a thing", "price_min": "cheap"}, "The price range could not be read, so it was left out."),
        ({"q": "a thing", "photo": "abc"}, "This photo search link is incomplete"),
        ({"q": "a thing", "similar": "1"}, "That product could not be found, so it was left out."),
        ({"q": "a thing", "sort": "sideways"}, "That sort order is unknown"),
    ],
)
def test_a_link_with_a_part_that_cannot_be_used_still_shows_results_and_says_so_in_words(shop, params, notice):
    response = Client().get("/", params)
    html = page(response)
    assert response.status_code == 200
    assert notice in html
    assert sorted(card_titles(html)) == ["Thing 0", "Thing 1", "Thing 2"]
    for name in ("page:", "photo:", "price_min:", "sort:", "similar:"):
        assert name not in html


def test_more_like_this_of_an_unknown_product_is_a_404_in_words(shop):
    response = Client().get("/", {"similar": 999999})
    assert response.status_code == 404
    assert "That product is no longer in the shop." in page(response)


def test_the_partial_header_returns_just_the_results(shop):
    response = Client().get("/", {"q": "a thing"}, headers={"X-Vitrine-Partial": "1"})
    html = page(response)
    assert html.lstrip().startswith('<div id="results"') and "<html" not in html
    assert 'data-title="a thing · Vitrine"' in html


def test_a_photo_search_redirects_to_a_shareable_url_and_finds_the_pictured_product(shop):
    photo = SimpleUploadedFile("me.jpg", images.noise_jpeg(1), "image/jpeg")
    response = Client().post("/", {"image": photo})
    assert response.status_code == 303
    location = response["Location"]
    token = parse_qs(urlsplit(location).query)["photo"][0]
    html = page(Client().get(location))
    assert card_titles(html)[0] == "Thing 1"
    assert "Searching with <strong>your photo</strong>" in html
    served = Client().get(f"/search/photos/{token}.jpg")
    assert served.status_code == 200 and served["Content-Type"] == "image/jpeg"


def test_a_photo_with_words_says_what_is_searched(shop):
    photo = SimpleUploadedFile("me.jpg", images.noise_jpeg(1), "image/jpeg")
    response = Client().post("/", {"camera": photo, "q": "but in red"})
    html = page(Client().get(response["Location"]))
    assert "your photo</strong> + <strong>“but in red”</strong>" in html


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (b"hello", 415, "This file is not a photo."),
        (b"", 400, "This file is empty. Choose a photo."),
        (images.noise_jpeg(3)[:300], 400, "This photo seems damaged and cannot be read."),
    ],
)
def test_a_bad_photo_shows_the_specific_reason_and_stores_nothing(shop, settings, content, status, message):
    response = Client().post("/", {"image": SimpleUploadedFile("me.jpg", content, "image/jpeg")})
    assert response.status_code == status
    assert message in page(response)
    assert not (settings.MEDIA_ROOT / "query-photos").exists()


def test_a_photo_with_too_many_pixels_is_refused_as_a_possible_bomb(shop, settings):
    settings.VITRINE_MAX_IMAGE_PIXELS = 100
    response = Client().post("/", {"image": SimpleUploadedFile("me.jpg", images.noise_jpeg(5), "image/jpeg")})
    assert response.status_code == 400
    assert "This photo has too many pixels to search with." in page(response)
    assert "VITRINE_" not in page(response) and "bomb" not in page(response)


def test_a_photo_over_the_size_limit_is_a_413(shop, settings):
    content = images.noise_jpeg(5)
    settings.VITRINE_MAX_IMAGE_BYTES = len(content) - 1
    response = Client().post("/", {"image": SimpleUploadedFile("me.jpg", content, "image/jpeg")})
    assert response.status_code == 413
    assert "This photo is too large." in page(response) and "VITRINE_" not in page(response)


def test_an_image_address_on_a_private_network_is_refused(shop):
    response = Client().post("/", {"image_url": "http://127.0.0.1:8000/media/x.jpg"})
    assert response.status_code == 400
    assert "Images can only be fetched from public websites." in page(response)
    assert "127.0.0.1" not in page(response).replace('value="http://127.0.0.1:8000/media/x.jpg"', "")
    assert "VITRINE_" not in page(response)


def test_a_photo_form_with_nothing_in_it_says_what_to_do(shop):
    response = Client().post("/", {})
    assert response.status_code == 400
    assert "Choose a photo, take one, or paste the address of an image." in page(response)


def test_an_expired_photo_link_says_so(shop):
    response = Client().get("/", {"photo": "0" * 32})
    assert response.status_code == 404
    assert "This photo search has expired" in page(response)


def test_an_unavailable_store_gives_a_503_page_that_says_so(shop, monkeypatch, caplog):
    from embeddings.search import engine as search

    def down():
        raise IndexUnavailable("The embedded vector store at /x is in use by another Vitrine process")

    monkeypatch.setattr(search, "get_index", down)
    response = Client().get("/", {"q": "mug"})
    assert response.status_code == 503
    assert response["Retry-After"] == "30"  # when to try again, as the API says too
    assert "Search is unavailable right now" in page(response)
    assert "in use by another Vitrine process" not in page(response), "the operator's details go to the log"
    assert "in use by another Vitrine process" in caplog.text


def test_thumbnails_are_webp_made_once_and_cached_forever(shop, settings):
    image = shop[0].images.get()
    response = Client().get(f"/thumbnails/{image.sha256}-320.webp")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    assert "immutable" in response["Cache-Control"]
    thumb = Image.open(io.BytesIO(b"".join(response.streaming_content)))
    assert thumb.format == "WEBP" and max(thumb.size) <= 320
    path = thumbnail_path(image.sha256, 320)
    made_at = path.stat().st_mtime_ns
    b"".join(Client().get(f"/thumbnails/{image.sha256}-320.webp").streaming_content)
    assert path.stat().st_mtime_ns == made_at, "served from the file, not made again"
    assert Client().get(f"/thumbnails/{image.sha256}-100.webp").status_code == 404
    assert Client().get(f"/thumbnails/{'0' * 64}-320.webp").status_code == 404


def test_the_product_page_shows_images_details_shop_link_and_similar_products(shop):
    response = Client().get(f"/products/{shop[0].pk}/", headers={"Referer": "http://testserver/?q=thing"})
    html = page(response)
    assert response.status_code == 200
    assert '<h1 id="product-title">Thing 0</h1>' in html
    assert 'href="https://shop.example/things/0"' in html
    assert "5.00 EUR" in html and "Colour" in html
    assert "Similar products" in html and "Thing 1" in html and "Thing 2" in html
    assert 'href="/?q=thing" id="back-to-search"' in html
    assert f"{shop[0].images.get().sha256}-320.webp" in html


def test_the_product_page_of_an_unknown_or_inactive_product_is_404(shop):
    assert Client().get("/products/999999/").status_code == 404
    services.product_upsert(external_id="sku-0", title="Thing 0", is_active=False)
    assert Client().get(f"/products/{shop[0].pk}/").status_code == 404


def test_a_product_without_indexed_photos_says_similar_ones_come_later(shop):
    product = services.product_upsert(external_id="new", title="New thing").product
    html = page(Client().get(f"/products/{product.pk}/"))
    assert "Similar products appear once this product" in html


def test_an_image_address_is_downloaded_and_searched_with(shop, settings):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    photo = images.noise_jpeg(2)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(photo)))
            self.end_headers()
            self.wfile.write(photo)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.VITRINE_FETCH_ALLOWED_NETWORKS = ["127.0.0.0/8"]  # the test server is on loopback
    try:
        response = Client().post("/", {"image_url": f"http://127.0.0.1:{server.server_port}/thing.jpg"})
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 303
    assert card_titles(page(Client().get(response["Location"])))[0] == "Thing 2"


def test_a_page_past_the_last_links_back_to_the_first_with_the_same_search(shop):
    html = page(Client().get("/", {"q": "a thing", "brand": "Nordlys", "page": "5"}))
    assert "There are no more results" in html
    assert '<a href="?q=a+thing&amp;brand=Nordlys">Back to the first page</a>' in html


def test_huge_ids_are_left_out_and_responses_vary_on_the_partial_header(shop):
    response = Client().get("/", {"q": "a thing", "plus": str(2**70)})
    assert response.status_code == 200 and "Some liked products could not be used" in page(response)
    response = Client().get("/", {"similar": str(2**70)})
    assert response.status_code == 200 and "That product could not be found" in page(response)
    assert "X-Vitrine-Partial" in Client().get("/", {"q": "a thing"})["Vary"]


def test_photo_searches_from_one_address_are_paced(shop, settings):
    """Each photo search decodes (or fetches) a photo: past VITRINE_PHOTO_SEARCH_RATE from one
    address, a plain-worded 429 with Retry-After, before any of that work; others go on."""
    settings.VITRINE_PHOTO_SEARCH_RATE = "2/minute"

    def upload(address: str):
        photo = SimpleUploadedFile("me.jpg", images.noise_jpeg(1), "image/jpeg")
        return Client(REMOTE_ADDR=address).post("/", {"image": photo})

    assert [upload("203.0.113.5").status_code for _ in range(2)] == [303, 303]
    paced = upload("203.0.113.5")
    assert paced.status_code == 429
    assert 1 <= int(paced["Retry-After"]) <= 61
    assert "Too many photo searches from here just now" in page(paced)
    assert upload("203.0.113.6").status_code == 303  # another shopper

    # Behind the trusted proxy: the address it appended, not the proxy's own (nor one the
    # client wrote into the header).
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    def via_proxy(client_address: str):
        photo = SimpleUploadedFile("me.jpg", images.noise_jpeg(1), "image/jpeg")
        forwarded = f"198.51.100.1, {client_address}"  # the first entry is the client's to write
        return Client(REMOTE_ADDR="10.0.0.2").post("/", {"image": photo}, headers={"X-Forwarded-For": forwarded})

    assert [via_proxy("203.0.113.7").status_code for _ in range(3)] == [303, 303, 429]
    assert via_proxy("203.0.113.8").status_code == 303

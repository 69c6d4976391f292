"""The shoppers' pages in their language (English, 简体中文) and without operator text:
the language switch, Accept-Language, products' own translations, the site's 404 and 413
pages, and links with parts that cannot be used."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from catalog import services
from tests import images

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop():
    rows = [
        ("Red mug", "红色杯子", "kitchen", "厨房", "red", "红色", "mug", "杯子"),
        ("Blue mug", "蓝色杯子", "kitchen", "厨房", "blue", "蓝色", "mug", "杯子"),
        ("Red bag", "红色包", "accessories", "配饰", "red", "红色", "bag", "包"),
    ]
    products = []
    for number, (title, title_zh, category, category_zh, colour, colour_zh, kind, kind_zh) in enumerate(rows):
        product = services.product_upsert(
            external_id=f"sku-{number}",
            title=title,
            description=f"A {title.lower()}.",
            category=category,
            brand="Nordlys",
            price=5 + number,
            currency="EUR",
            attributes={
                "colour": colour,
                "kind": kind,
                "title_zh": title_zh,
                "category_zh": category_zh,
                "colour_zh": colour_zh,
                "kind_zh": kind_zh,
                "description_zh": f"一个{title_zh}。",
            },
        ).product
        services.image_create(product=product, content=images.noise_jpeg(number))
        products.append(product)
    return products


def html_of(response) -> str:
    return response.content.decode()


def titles(html: str) -> list[str]:
    return re.findall(r'<span class="title">([^<]+)</span>', html)


def test_a_browser_asking_for_chinese_gets_the_page_and_the_products_in_chinese(shop, settings):
    settings.VITRINE_FACET_ATTRIBUTES = ["colour", "kind"]
    html = html_of(Client().get("/", {"q": "mug"}, headers={"Accept-Language": "zh-CN,zh;q=0.9"}))
    assert '<html lang="zh-hans">' in html
    assert "的搜索结果" in html and "个相关结果" in html and "用照片搜索" in html
    assert sorted(titles(html)) == ["红色杯子", "蓝色杯子"]
    # Facet names and values in Chinese; the filter links keep the shop's own values.
    assert '<h2 id="facet-colour">颜色</h2>' in html and '<span class="label">红色</span>' in html
    assert '<span class="label">厨房</span>' in html and 'data-value="red"' in html
    assert "Results for" not in html and "Filters" not in html


def test_traditional_chinese_and_bare_zh_browsers_get_simplified_chinese(shop):
    for header in ("zh-TW", "zh", "zh-Hant-HK"):
        assert '<html lang="zh-hans">' in html_of(Client().get("/", headers={"Accept-Language": header}))
    assert '<html lang="en">' in html_of(Client().get("/", headers={"Accept-Language": "fr-FR,de"}))


def test_the_language_switch_keeps_the_page_and_wins_over_the_browser(shop):
    client = Client()
    page = html_of(client.get("/", {"q": "mug", "colour": "red"}))
    assert '<html lang="en">' in page
    form = re.search(r'<form class="language-switch" action="([^"]+)" method="post">', page)
    next_url = re.search(r'name="next" value="([^"]+)"', page)[1].replace("&amp;", "&")
    assert parse_qs(urlsplit(next_url).query) == {"q": ["mug"], "colour": ["red"]}
    response = client.post(form[1], {"language": "zh-hans", "next": next_url})
    assert response.status_code == 302 and response["Location"] == next_url
    chinese = html_of(client.get(next_url, headers={"Accept-Language": "en"}))
    assert '<html lang="zh-hans">' in chinese and "颜色: 红色" in chinese
    assert 'aria-pressed="true">中文' in chinese
    client.post(form[1], {"language": "en", "next": next_url})
    assert '<html lang="en">' in html_of(client.get(next_url, headers={"Accept-Language": "zh-CN"}))


def test_the_switch_refuses_to_send_the_shopper_to_another_site(shop):
    response = Client().post("/language/", {"language": "zh-hans", "next": "https://evil.example/"})
    assert response.status_code == 302 and not response["Location"].startswith("https://evil")


def test_the_api_answers_in_english_whatever_the_browser_asks(shop):
    response = Client().get("/api/v1/search", {"q": ""}, headers={"Accept-Language": "zh-CN"})
    assert response.status_code == 401  # DRF has Chinese messages: they must not be used
    body = response.json()
    assert body["error"]["code"] and re.search(r"[A-Za-z]", body["error"]["message"])
    assert not re.search(r"[\u4e00-\u9fff]", response.content.decode())
    assert "Content-Language" not in response


def test_chinese_descriptions_are_searchable_prose_but_not_catalog_words(shop):
    from embeddings.keywords import attribute_items, product_fields

    product = shop[0]
    assert "一个红色杯子。" in product_fields(product)["description"]
    assert all(key != "description_zh" for key, _ in attribute_items(product.attributes))


def test_an_unknown_address_gets_the_site_page_not_django_debug_page(shop, settings):
    settings.DEBUG = True  # the embedded demo's default: Django would show its technical page
    response = Client().get("/no/such/page/")
    html = html_of(response)
    assert response.status_code == 404
    assert "This page does not exist" in html and "URLconf" not in html and "DEBUG" not in html
    zh = html_of(Client().get("/products/999999/", headers={"Accept-Language": "zh-CN"}))
    assert "这个页面不存在" in zh
    # The admin and the API keep their own 404s.
    assert Client().get("/api/v1/nothing").json()["error"]["code"] == "not_found"


def test_a_photo_over_the_request_limit_gets_a_page_in_words_not_a_setting_name(shop, settings):
    settings.VITRINE_MAX_IMAGE_BYTES = 1024
    content = b"x" * (2 * 1024 * 1024 + 10)
    response = Client().post(
        "/", {"image": SimpleUploadedFile("big.jpg", content, "image/jpeg")}, headers={"Accept-Language": "zh-CN"}
    )
    html = html_of(response)
    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/html")
    assert "这张照片太大了" in html and "VITRINE_" not in html


def test_a_crop_searches_that_part_of_the_photo_and_is_kept_in_the_link(shop):
    photo = SimpleUploadedFile("me.jpg", images.noise_jpeg(1), "image/jpeg")
    response = Client().post("/", {"image": photo, "crop": "0.1,0.2,0.5,0.5"})
    assert response.status_code == 303
    query = parse_qs(urlsplit(response["Location"]).query)
    assert query["crop"] == ["0.1,0.2,0.5,0.5"]
    whole = html_of(Client().get("/", {"photo": query["photo"][0]}))
    part = html_of(Client().get("/", {"photo": query["photo"][0], "crop": "0.1,0.2,0.5,0.5"}))
    assert "part of it" in part and "part of it" not in whole
    assert titles(part) and titles(whole)
    assert "Search the whole photo" in part
    bad = html_of(Client().get("/", {"photo": query["photo"][0], "crop": "0.9,0.9,0.5,0.5"}))
    assert "the whole photo is searched" in bad


def test_a_cropped_search_ranks_by_the_part_shown(shop):
    """The photo is a product's own picture on the left and another's on the right: each
    half finds its own product first."""
    from io import BytesIO

    from PIL import Image

    left, right = (Image.open(BytesIO(images.noise_jpeg(n))).convert("RGB") for n in (0, 2))
    height = max(left.height, right.height)
    both = Image.new("RGB", (left.width + right.width, height), "white")
    both.paste(left, (0, 0))
    both.paste(right, (left.width, 0))
    buffer = BytesIO()
    both.save(buffer, "JPEG", quality=95)
    fraction = left.width / both.width
    location = Client().post("/", {"image": SimpleUploadedFile("both.jpg", buffer.getvalue(), "image/jpeg")})[
        "Location"
    ]
    token = parse_qs(urlsplit(location).query)["photo"][0]
    first_left = titles(html_of(Client().get("/", {"photo": token, "crop": f"0,0,{fraction:.4f},1", "loose": 1})))
    first_right = titles(
        html_of(Client().get("/", {"photo": token, "crop": f"{fraction:.4f},0,{1 - fraction:.4f},1", "loose": 1}))
    )
    assert first_left[0] == "Red mug"
    assert first_right[0] == "Red bag"


def test_every_facet_name_is_in_chinese_on_a_chinese_page(shop, settings):
    settings.VITRINE_FACET_ATTRIBUTES = ["colour", "kind"]
    html = html_of(Client().get("/", {"q": "mug"}, headers={"Accept-Language": "zh-CN"}))
    names = re.findall(r'<h2 id="facet-[^"]+">([^<]+)</h2>', html)
    assert names == ["类别", "品牌", "颜色", "品类", "价格"]


def test_only_translated_descriptions_are_prose_other_description_attributes_stay_values():
    from embeddings.keywords import attribute_items

    attributes = {"description_zh": "一个红色杯子。", "description_short": "gift"}
    assert list(attribute_items(attributes)) == [("description_short", "gift")]

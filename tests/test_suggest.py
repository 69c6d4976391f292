"""The search box's suggestions (GET /suggest): popular clicked queries first, then the
catalog's brands, categories and values, in the shopper's language."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from analytics.models import SearchEvent, SearchRecord
from catalog import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop():
    rows = [
        ("Red mug", "kitchen", "厨房", "red", "红色", "mug", "杯子", "Nordlys"),
        ("Blue mug", "kitchen", "厨房", "blue", "蓝色", "mug", "杯子", "Nordlys"),
        ("Red bag", "accessories", "配饰", "red", "红色", "bag", "包", "Casa Mora"),
        ("Brown lamp", "home", "家居", "brown", "棕色", "lamp", "台灯", "Kito"),
    ]
    for number, (title, category, category_zh, colour, colour_zh, kind, kind_zh, brand) in enumerate(rows):
        services.product_upsert(
            external_id=f"sku-{number}",
            title=title,
            category=category,
            brand=brand,
            price=5 + number,
            currency="EUR",
            attributes={
                "colour": colour,
                "kind": kind,
                "title_zh": f"{colour_zh}{kind_zh}",
                "category_zh": category_zh,
                "colour_zh": colour_zh,
                "kind_zh": kind_zh,
            },
        )


def searched(query: str, *, clicks: int = 0, results: int = 5, language: str = "en", days_ago: float = 0) -> None:
    record = SearchRecord.objects.create(
        query=query,
        language=language,
        kind=SearchRecord.Kind.TEXT,
        source=SearchRecord.Source.PAGE,
        result_count=results,
        zero_results=results == 0,
        latency_ms=12.0,
        created_at=timezone.now() - timedelta(days=days_ago),
    )
    for position in range(1, clicks + 1):
        SearchEvent.objects.create(search=record, type=SearchEvent.Type.CLICK, position=position)


def suggestions(prefix: str, accept_language: str = "en") -> list[tuple[str, str]]:
    response = Client().get("/suggest", {"q": prefix}, headers={"Accept-Language": accept_language})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return [(row["text"], row["kind"]) for row in response.json()["suggestions"]]


def test_it_answers_a_list_of_text_and_kind(shop):
    response = Client().get("/suggest", {"q": "nor"})

    assert response.json() == {"suggestions": [{"text": "Nordlys", "kind": "brand"}]}
    assert response["Cache-Control"] == "private, max-age=60"
    assert {"Cookie", "Accept-Language"} <= {part.strip() for part in response["Vary"].split(",")}


def test_popular_clicked_queries_come_first_most_clicked_first(shop):
    searched("red mug", clicks=1)
    searched("red mug", clicks=0)
    searched("red striped scarf", clicks=3)
    searched("red bag", clicks=1)  # as many clicks as "red mug", fewer searches

    assert suggestions("red")[:3] == [
        ("red striped scarf", "query"),
        ("red mug", "query"),
        ("red bag", "query"),
    ]


def test_a_query_contained_in_a_popular_query_suggests_it(shop):
    searched("large red mug", clicks=2)

    assert ("large red mug", "query") in suggestions("red m")


def test_unclicked_zero_result_and_old_queries_are_not_suggested(shop):
    searched("red umbrella")  # searched often, never clicked
    searched("red umbrella")
    searched("red hat", clicks=1, results=0)  # clicked is impossible, but found nothing anyway
    searched("red scarf", clicks=2)
    searched("red scarf", results=0)  # its latest search found nothing: the product is gone
    searched("red sofa", clicks=4, days_ago=45)

    texts = [text for text, _ in suggestions("red")]

    assert not {"red umbrella", "red hat", "red scarf", "red sofa"} & set(texts)
    assert texts == []  # nor the colour "red": it is typed in full already


def test_a_photo_search_or_another_languages_query_is_not_suggested(shop):
    searched("红色杯子", clicks=2, language="zh-hans")
    SearchRecord.objects.create(
        query="red tray",
        language="en",
        kind=SearchRecord.Kind.PHOTO_WORDS,
        source="page",
        result_count=3,
        zero_results=False,
        latency_ms=5,
    )

    assert suggestions("红") == []
    assert suggestions("red t") == []
    assert suggestions("红", accept_language="zh-Hans") == [("红色杯子", "query"), ("红色", "value")]


def test_the_catalogs_brands_categories_and_values_are_suggested(shop):
    assert suggestions("ca") == [("Casa Mora", "brand")]
    assert suggestions("kit") == [("kitchen", "category"), ("Kito", "brand")]  # 2 products, then 1
    assert suggestions("acc") == [("accessories", "category")]
    assert suggestions("bro") == [("brown", "value")]
    assert suggestions("MO") == [("Casa Mora", "brand")]  # case-insensitive, a word's start


def test_values_on_more_products_come_first(shop):
    # "kitchen" is the category of two products; "Kito" now the brand of three.
    services.product_upsert(external_id="sku-9", title="Kettle", brand="Kito", price=9, currency="EUR")
    services.product_upsert(external_id="sku-10", title="Cup", brand="Kito", price=9, currency="EUR")

    assert suggestions("kit") == [("Kito", "brand"), ("kitchen", "category")]


def test_several_words_complete_the_last(shop):
    assert suggestions("red mu") == [("red mug", "value")]


def test_chinese_shoppers_get_the_chinese_labels_by_accept_language(shop):
    assert suggestions("杯", accept_language="zh-CN,zh;q=0.9") == [("杯子", "value")]
    assert suggestions("厨", accept_language="zh-Hans") == [("厨房", "category")]
    # Brands are shown as written in every language.
    assert suggestions("nor", accept_language="zh-Hans") == [("Nordlys", "brand")]


def test_chinese_shoppers_get_the_chinese_labels_by_the_language_cookie(shop):
    client = Client()
    client.cookies["django_language"] = "zh-hans"

    rows = client.get("/suggest", {"q": "色"}).json()["suggestions"]

    assert {row["text"] for row in rows} == {"红色", "蓝色", "棕色"}
    assert client.get("/suggest", {"q": "ki"}).json()["suggestions"] == [{"text": "Kito", "kind": "brand"}]


def test_english_shoppers_are_not_offered_chinese_labels_of_english_values(shop):
    assert suggestions("杯") == []


@pytest.mark.parametrize("prefix", ["", " ", "r", "R ", "x" * 101])
def test_an_empty_one_letter_or_overlong_prefix_suggests_nothing(shop, prefix, django_assert_num_queries):
    searched("r", clicks=1)
    with django_assert_num_queries(0):
        assert suggestions(prefix) == []


def test_one_chinese_character_is_enough(shop):
    assert suggestions("鞋", accept_language="zh-Hans") == []  # no shoes in this shop
    assert suggestions("台", accept_language="zh-Hans") == [("台灯", "value")]


def test_at_most_eight_and_no_duplicates(shop):
    for number in range(12):
        searched(f"red thing {number:02d}", clicks=1)
    searched("red", clicks=5)

    rows = suggestions("red")

    assert len(rows) == 8
    assert len({text.casefold() for text, _ in rows}) == 8
    assert "red" not in [text for text, _ in rows]


def test_only_get_is_answered(shop):
    assert Client().post("/suggest", {"q": "red"}).status_code == 405

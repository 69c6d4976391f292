"""The merchandising rules' admin (validation, history) and the search preview, through
Django's test client."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from catalog import services
from embeddings.models import MerchandisingRule, RuleBoost, RuleHide, RulePin
from embeddings.search import SearchQuery, catalog_search
from tests.test_content_security_policy import inline_code

pytestmark = pytest.mark.django_db(transaction=True)

ADD = "/admin/embeddings/merchandisingrule/add/"
PREVIEW = "/admin/embeddings/merchandisingrule/preview/"


@pytest.fixture
def staff():
    client = Client()
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))
    return client


@pytest.fixture
def products():
    """Two products (no photos: validation needs rows, not an index)."""
    return [
        services.product_upsert(external_id=f"sku-{n}", title=f"Thing {n}", currency="EUR").product for n in range(2)
    ]


def rule_form(*, pins=(), boosts=(), **fields) -> dict:
    data = {"name": "Mugs", "is_enabled": "on", "match": "exact", "phrase": "mug", "note": "", **fields}
    for prefix, rows in (("pins", pins), ("hides", ()), ("boosts", boosts)):
        data |= {f"{prefix}-TOTAL_FORMS": str(len(rows)), f"{prefix}-INITIAL_FORMS": "0"}
        data |= {f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000"}
        for number, row in enumerate(rows):
            data |= {f"{prefix}-{number}-{key}": str(value) for key, value in row.items()}
    return data


def errors(response) -> str:
    return " ".join(re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', response.content.decode(), re.S))


def nothing_saved() -> bool:
    return not (
        MerchandisingRule.objects.exists()
        or RulePin.objects.exists()
        or RuleHide.objects.exists()
        or RuleBoost.objects.exists()
    )


def test_a_rule_with_a_pin_and_a_boost_is_saved_with_its_history(staff, products):
    data = rule_form(
        pins=[{"product": products[0].pk, "position": 1}],
        boosts=[{"field": "brand", "value": "Kito", "factor": "0.5"}],
    )
    response = staff.post(ADD, data)
    assert response.status_code == 302, errors(response)
    rule = MerchandisingRule.objects.get()
    assert [(p.product_id, p.position) for p in rule.pins.all()] == [(products[0].pk, 1)]
    assert rule.boosts.get().factor == 0.5
    entry = LogEntry.objects.get(object_id=str(rule.pk))
    assert "rule pin" in entry.get_change_message()
    data["is_enabled"] = ""
    data |= {"pins-INITIAL_FORMS": "1", "pins-0-id": rule.pins.get().pk, "pins-0-rule": rule.pk}
    data |= {"boosts-INITIAL_FORMS": "1", "boosts-0-id": rule.boosts.get().pk, "boosts-0-rule": rule.pk}
    response = staff.post(f"/admin/embeddings/merchandisingrule/{rule.pk}/change/", data)
    assert response.status_code == 302, errors(response)
    assert LogEntry.objects.filter(object_id=str(rule.pk)).latest("pk").get_change_message() == "Changed Enabled."


def test_a_pin_of_a_missing_product_is_refused_and_nothing_saved(staff, products):
    response = staff.post(ADD, rule_form(pins=[{"product": 999999, "position": 1}]))
    assert response.status_code == 200
    assert "Select a valid choice" in errors(response) or "does not exist" in errors(response)
    assert nothing_saved()


def test_two_pins_at_one_position_are_refused_in_a_rule_and_across_rules_for_the_same_words(staff, products):
    pins = [{"product": products[0].pk, "position": 2}, {"product": products[1].pk, "position": 2}]
    response = staff.post(ADD, rule_form(pins=pins))
    assert "Two pins at position 2 in this rule." in response.content.decode()
    assert nothing_saved()
    assert staff.post(ADD, rule_form(pins=pins[:1])).status_code == 302
    response = staff.post(ADD, rule_form(name="Other", phrase=" MUG", pins=pins[1:]))
    assert "Position 2 is already pinned by the rule “Mugs”." in response.content.decode()
    assert MerchandisingRule.objects.count() == 1
    # Another phrase, or a disabled rule, does not clash.
    assert staff.post(ADD, rule_form(name="Other", phrase="cup", pins=pins[1:])).status_code == 302
    assert staff.post(ADD, rule_form(name="Off", is_enabled="", pins=pins[1:])).status_code == 302


@pytest.mark.parametrize(
    ("boost", "fields", "message"),
    [
        ({"field": "brand", "value": "Kito", "factor": "0"}, {}, "Ensure this value is greater than or equal to 0.01"),
        ({"field": "brand", "value": "Kito", "factor": "-2"}, {}, "greater than or equal to 0.01"),
        ({"field": "attribute", "key": "", "factor": "2"}, {}, "Give the attribute&#x27;s key."),
        ({"field": "price", "low": "20", "high": "10", "factor": "2"}, {}, "The range&#x27;s end must be above"),
        (
            {"field": "brand", "value": "Kito", "factor": "2"},
            {"starts_at_0": "2026-01-02", "starts_at_1": "00:00", "ends_at_0": "2026-01-01", "ends_at_1": "00:00"},
            "The end must be after the start.",
        ),
    ],
)
def test_bad_boosts_and_windows_are_refused_and_nothing_saved(staff, boost, fields, message):
    data = rule_form(boosts=[boost]) | {"starts_at_0": "", "starts_at_1": "", "ends_at_0": "", "ends_at_1": ""}
    response = staff.post(ADD, data | fields)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert nothing_saved()


def test_the_preview_is_for_staff_and_linked_from_the_index_and_the_rule_list(staff):
    assert Client().get(PREVIEW).status_code == 302  # to the login
    assert PREVIEW in staff.get("/admin/").content.decode()
    assert PREVIEW in staff.get("/admin/embeddings/merchandisingrule/").content.decode()
    html = staff.get(PREVIEW).content.decode()
    assert inline_code(html) == []  # the Content-Security-Policy allows none
    for name in ("q", "photo", "cutoff", "disable", "pin_product", "pin_position"):
        assert re.search(rf'<label for="id_{name}"', html), name


def test_the_preview_shows_scores_fired_rules_the_cutoff_and_a_draft_pins_effect_without_saving(staff, small_shop):
    bury = MerchandisingRule.objects.create(name="Bury Kito", match="contains", phrase="mug")
    RuleBoost.objects.create(rule=bury, field="brand", value="Kito", factor=0.5)
    shown = catalog_search(SearchQuery(text="mug", limit=24, relevant_only=False)).hits
    first_loose = next(hit.product.pk for hit in shown if not hit.explain["relevant"])
    outsider = next(p for p in small_shop if p.attributes["kind"] == "lamp" and p.brand != "Kito")
    saved = (MerchandisingRule.objects.count(), RulePin.objects.count(), LogEntry.objects.count())

    html = staff.post(PREVIEW, {"q": "mug", "pin_product": outsider.pk, "pin_position": 1}).content.decode()

    assert html.count(": results in order</caption>") == 2, "as saved and what if, side by side"
    assert "Rules fired:" in html and "<strong>Bury Kito</strong>" in html and "<strong>Draft pin</strong>" in html
    assert '<th scope="col">Keyword</th>' in html and '<th scope="col">Vector</th>' in html
    assert html.count('class="cutoff-line"') == 2
    before, after = html.split('id="preview-column-2"')
    # The line falls between the last relevant result and the first loosely related one.
    assert before.index(f"(id {shown[0].product.pk},") < before.index(">Relevance cutoff<")
    assert before.index(">Relevance cutoff<") < before.index(f"(id {first_loose},")
    assert f"(id {outsider.pk}," not in before
    row = r'<tbody>\s*<tr>\s*<th scope="row">1 <small>\(new\)</small></th>\s*<td><img[^>]*> ([^<]+)'
    first_row = re.search(row, after)
    assert first_row and first_row.group(1).strip() == outsider.title
    assert re.findall(r'rule-effect">([^<]*)<', after)[0] == "pinned at #1 (Draft pin)"
    assert "The order differs" in html
    assert (MerchandisingRule.objects.count(), RulePin.objects.count(), LogEntry.objects.count()) == saved


def test_the_preview_keeps_a_buried_relevant_product_above_the_line_and_says_what_shoppers_see(staff, small_shop):
    relevant = catalog_search(SearchQuery(text="mug", limit=24))
    leader = relevant.hits[0].product
    rule = MerchandisingRule.objects.create(name="Bury the leader", match="exact", phrase="mug")
    RuleBoost.objects.create(rule=rule, field="brand", value=leader.brand, factor=0.01)

    html = staff.get(PREVIEW, {"q": "mug"}).content.decode()

    # Buried far below the loosely related by its score, it is still among what shoppers see.
    assert html.index(f"(id {leader.pk},") < html.index(">Relevance cutoff<")
    assert f"Shoppers see {relevant.total} result" in html


def test_the_preview_with_a_rule_disabled_shows_the_order_without_it(staff, small_shop):
    shown = catalog_search(SearchQuery(text="mug", limit=24))
    last = next(p for p in small_shop if p.pk == shown.hits[-1].product.pk)
    rule = MerchandisingRule.objects.create(name="Last first", match="exact", phrase="mug")
    RulePin.objects.create(rule=rule, product=last, position=1)
    html = staff.get(PREVIEW, {"q": "mug", "disable": rule.pk}).content.decode()
    before, after = html.split('id="preview-column-2"')
    assert "pinned at #1 (Last first)" in before and "pinned at #1" not in after
    assert "The order differs" in html
    assert MerchandisingRule.objects.get().is_enabled


def test_the_preview_takes_a_photo_and_refuses_a_file_that_is_not_one(staff, small_shop):
    product = small_shop[3]
    photo = product.images.order_by("position", "pk").first()
    with photo.file.open("rb") as handle:
        content = handle.read()
    html = staff.post(PREVIEW, {"photo": SimpleUploadedFile("shot.jpg", content, "image/jpeg")}).content.decode()
    assert html.count(": results in order</caption>") == 1
    assert re.search(rf'<th scope="row">1</th>\s*<td><img[^>]*> {re.escape(product.title)} ', html)
    bad = staff.post(PREVIEW, {"photo": SimpleUploadedFile("notes.jpg", b"not a photo", "image/jpeg")})
    assert ": results in order</caption>" not in bad.content.decode()
    assert 'id="id_photo_errors"' in bad.content.decode()

"""Generated alt text and descriptions on the small demo shop, against the stand-in
OpenAI-compatible server on loopback (tests/standin_openai.py): what is asked for, what is
written, failures per photo, the budget, the review in the admin, and where accepted text
shows (photos' alt, product pages in both languages, the keyword search)."""

from __future__ import annotations

import base64
import io
import re
import time

import pytest
from celery.exceptions import Retry
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from PIL import Image

from catalog.models import Product, ProductImage
from embeddings import tasks
from embeddings.captions import images_caption, images_needing_captions
from embeddings.models import CaptionSuggestion
from embeddings.search import SearchQuery, catalog_search
from searchsite.celery import app

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop(small_shop, standin, settings):
    """The demo shop with every photo's alt text written and every description kept, but
    for what each test takes away; retries quick."""
    settings.VITRINE_CAPTION_RETRIES = 0
    ProductImage.objects.update(alt_text="Written by a person", alt_text_zh="人写的")
    return small_shop


def first_image(product: Product) -> ProductImage:
    return product.images.order_by("position", "id").first()


def admin_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("admin", password="pw"))
    return client


def sent_photo(call) -> Image.Image:
    part = next(p for p in call.body["messages"][0]["content"] if p["type"] == "image_url")
    return Image.open(io.BytesIO(base64.b64decode(part["image_url"]["url"].split(",", 1)[1])))


def sent_text(call) -> str:
    return next(p for p in call.body["messages"][0]["content"] if p["type"] == "text")["text"]


def test_only_photos_without_alt_text_and_products_without_a_description_are_captioned(shop, standin):
    product, other = shop[0], shop[1]
    Product.objects.filter(pk=product.pk).update(description="")
    second_photo = other.images.order_by("position", "id")[1]
    ProductImage.objects.filter(pk=second_photo.pk).update(alt_text="", alt_text_zh="")

    wanted = images_needing_captions()
    tasks.caption_images.apply(args=[wanted])

    assert wanted == [first_image(product).pk, second_photo.pk]
    described = CaptionSuggestion.objects.get(image=first_image(product))
    assert described.state == "pending" and described.model == "vision-test"
    assert described.description_en.startswith("A ") and "拍摄" in described.description_zh
    assert described.alt_en == "" and described.alt_zh == "", "its alt text was there already"
    alt_only = CaptionSuggestion.objects.get(image=second_photo)
    assert alt_only.alt_en.endswith("on a light background") and alt_only.alt_zh.startswith("浅色背景上的")
    assert alt_only.description_en == "" and alt_only.description_zh == ""
    assert CaptionSuggestion.objects.count() == 2
    calls = standin.calls("chat")
    assert len(calls) == 2
    assert max(sent_photo(calls[0]).size) <= 512 and sent_photo(calls[0]).format == "JPEG"
    assert f"Title: {product.title}" in sent_text(calls[0]) and f"Category: {product.category}" in sent_text(calls[0])
    Product.objects.filter(pk=product.pk).update(description="Now written")
    assert images_needing_captions() == [], "pending ones wait for review; the rest have text"


def test_nothing_is_sent_and_no_action_is_offered_while_the_service_is_off(shop, standin, settings):
    Product.objects.filter(pk=shop[0].pk).update(description="")
    client = admin_client()
    assert 'value="write_captions"' in client.get("/admin/catalog/product/").content.decode()
    settings.VITRINE_CAPTION_API_URL = ""

    tasks.caption_images.apply(args=[[first_image(shop[0]).pk]])
    with pytest.raises(CommandError, match="VITRINE_CAPTION_API_URL"):
        call_command("caption", "--missing")

    assert standin.requests == []
    assert not CaptionSuggestion.objects.exists()
    assert 'value="write_captions"' not in client.get("/admin/catalog/product/").content.decode()
    assert 'value="write_captions"' not in client.get("/admin/catalog/productimage/").content.decode()


def test_a_photo_that_fails_is_a_failed_suggestion_with_the_reason_and_the_others_are_written(shop, standin):
    products = shop[:3]
    Product.objects.filter(pk__in=[p.pk for p in products]).update(description="")
    standin.script("chat", "500", "malformed")

    report = images_caption(image_ids=[first_image(p).pk for p in products])

    server_error, malformed, fine = (CaptionSuggestion.objects.get(image=first_image(p)) for p in products)
    assert server_error.state == "failed" and "failed (500): The server had an error" in server_error.error
    assert malformed.state == "failed" and "not JSON" in malformed.error
    assert fine.state == "pending" and fine.error == "" and fine.description_en
    assert report.suggested == [first_image(products[2]).pk] and len(report.failed) == 2
    assert all(Product.objects.get(pk=p.pk).description == "" for p in products), "nothing written to the shop"
    assert set(images_needing_captions()) == {first_image(p).pk for p in products[:2]}, "failed ones are tried again"


def test_a_spent_budget_leaves_the_photos_waiting_not_failed(shop, standin, settings):
    settings.VITRINE_CAPTION_PER_MINUTE = 1
    if time.time() % 60 > 55:
        time.sleep(6)  # the budget is per clock minute: start in the same minute as we end
    products = shop[:3]
    Product.objects.filter(pk__in=[p.pk for p in products]).update(description="")
    ids = [first_image(p).pk for p in products]

    report = images_caption(image_ids=ids)

    assert report.suggested == ids[:1] and report.waiting == ids[1:]
    assert 0 < report.retry_after <= 60
    assert list(CaptionSuggestion.objects.values_list("image_id", "state")) == [(ids[0], "pending")]
    assert len(standin.calls("chat")) == 1, "the spent budget stops calls before they are sent"


def test_the_task_is_retried_when_the_service_rate_limits_us(shop, standin):
    products = shop[:2]
    Product.objects.filter(pk__in=[p.pk for p in products]).update(description="")
    ids = [first_image(p).pk for p in products]
    standin.script("chat", "ok", "429")
    # As a worker runs it (not in-process, where a retry would run at once).
    app.conf.task_always_eager = False
    tasks.caption_images.push_request(id="caption-test", retries=0, called_directly=False, is_eager=False)
    try:
        with pytest.raises(Retry) as retried:
            tasks.caption_images.run(ids)
    finally:
        tasks.caption_images.pop_request()
        app.conf.task_always_eager = True

    assert retried.value.sig.args == ([ids[1]],), "only the photo not yet captioned is retried"
    assert retried.value.when == 60.0
    assert list(CaptionSuggestion.objects.values_list("image_id", "state")) == [(ids[0], "pending")]


def test_the_products_action_queues_the_photos_lacking_text_and_says_how_many(shop, standin):
    product = shop[0]
    Product.objects.filter(pk=product.pk).update(description="")
    ProductImage.objects.filter(product=product).update(alt_text="")
    photos = list(product.images.values_list("pk", flat=True))
    client = admin_client()

    response = client.post(
        "/admin/catalog/product/",
        {"action": "write_captions", "_selected_action": [product.pk, shop[1].pk]},
        follow=True,
    )

    assert f"{len(photos)} photos queued for alt text and descriptions" in response.content.decode()
    assert sorted(CaptionSuggestion.objects.values_list("image_id", flat=True)) == sorted(photos)
    assert len(standin.calls("chat")) == len(photos), "the other product has all its text"


def accept_through_the_admin(client: Client, suggestion: CaptionSuggestion, **edits) -> None:
    if edits:
        page = client.get(f"/admin/embeddings/captionsuggestion/{suggestion.pk}/change/").content.decode()
        assert 'name="_accept"' in page and suggestion.image.large_thumbnail_url in page
        form = {name: getattr(suggestion, name) for name in ("alt_en", "alt_zh", "description_en", "description_zh")}
        response = client.post(
            f"/admin/embeddings/captionsuggestion/{suggestion.pk}/change/", {**form, **edits, "_accept": "1"}
        )
        assert response.status_code == 302, response.content.decode()[:2000]
    else:
        client.post("/admin/embeddings/captionsuggestion/", {"action": "accept", "_selected_action": [suggestion.pk]})


def test_the_review_list_shows_what_a_suggestion_replaces_and_the_start_of_long_text(shop, standin):
    """The list stays readable on a laptop: beside each suggestion only the text it would
    replace, long descriptions cut; the change form shows all of it."""
    product = shop[0]
    long_text = ("Glazed by hand in small batches. " * 20).strip()  # 659 characters
    Product.objects.filter(pk=product.pk).update(description=long_text)
    photo = first_image(product)
    ProductImage.objects.filter(pk=photo.pk).update(alt_text="", alt_text_zh="")
    images_caption(image_ids=[photo.pk])
    suggestion = CaptionSuggestion.objects.get(image=photo)
    assert (suggestion.alt_en, suggestion.description_en) != ("", "") and suggestion.description_en == ""
    client = admin_client()

    listing = client.get("/admin/embeddings/captionsuggestion/").content.decode()
    form = client.get(f"/admin/embeddings/captionsuggestion/{suggestion.pk}/change/").content.decode()

    assert suggestion.alt_en in listing and long_text[:60] not in listing  # the description stays
    assert long_text in form
    CaptionSuggestion.objects.filter(pk=suggestion.pk).update(description_en=long_text)
    listing = client.get("/admin/embeddings/captionsuggestion/").content.decode()
    assert long_text not in listing and long_text[:100] in listing and "…" in listing


def test_an_accepted_caption_shows_on_the_product_page_in_both_languages_and_in_the_history(shop, standin):
    product = shop[0]
    Product.objects.filter(pk=product.pk).update(description="")
    photo = first_image(product)
    ProductImage.objects.filter(pk=photo.pk).update(alt_text="", alt_text_zh="")
    images_caption(image_ids=[photo.pk])
    suggestion = CaptionSuggestion.objects.get(image=photo)
    client = admin_client()
    listing = client.get("/admin/embeddings/captionsuggestion/", {"state": "pending"}).content.decode()
    assert suggestion.alt_en in listing and suggestion.alt_zh in listing

    accept_through_the_admin(client, suggestion)

    suggestion.refresh_from_db()
    photo.refresh_from_db()
    product.refresh_from_db()
    assert suggestion.state == "accepted" and suggestion.decided_by.username == "admin"
    assert (photo.alt_text, photo.alt_text_zh) == (suggestion.alt_en, suggestion.alt_zh)
    assert product.description == suggestion.description_en
    assert product.attributes["description_zh"] == suggestion.description_zh
    english = Client().get(product.get_absolute_url()).content.decode()
    assert f'alt="{suggestion.alt_en}"' in english and suggestion.description_en in english
    chinese = Client().get(product.get_absolute_url(), headers={"Accept-Language": "zh-CN"}).content.decode()
    assert f'alt="{suggestion.alt_zh}"' in chinese and suggestion.description_zh in chinese
    history = list(LogEntry.objects.values_list("object_id", "change_message"))
    assert (
        str(suggestion.pk),
        f"Accepted the generated caption of photo {photo.pk}: wrote alt text, "
        "Chinese alt text, description, Chinese description.",
    ) in history
    assert str(product.pk) in {object_id for object_id, _ in history}


def test_an_edited_caption_is_accepted_as_edited_and_its_words_find_the_product(shop, standin):
    product = shop[0]
    # A word of this catalog that this product's title and attributes do not have.
    other_kind = next(p.attributes["kind"] for p in shop if p.attributes["kind"] != product.attributes["kind"])
    other_kinds = {p.pk for p in shop if p.attributes["kind"] == other_kind}
    Product.objects.filter(pk=product.pk).update(description="")
    photo = first_image(product)
    ProductImage.objects.filter(pk=photo.pk).update(alt_text="", alt_text_zh="")
    images_caption(image_ids=[photo.pk])
    suggestion = CaptionSuggestion.objects.get(image=photo)
    assert product.pk not in {hit.product.pk for hit in catalog_search(SearchQuery(text=other_kind, limit=100)).hits}

    accept_through_the_admin(
        admin_client(),
        suggestion,
        alt_en=f"A zanzibar {product.attributes['kind']} shaped like a {other_kind}",
        description_en="Hand thrown in a quokka workshop.",
    )

    photo.refresh_from_db()
    product.refresh_from_db()
    assert photo.alt_text == f"A zanzibar {product.attributes['kind']} shaped like a {other_kind}"
    assert product.description == "Hand thrown in a quokka workshop."
    found = {hit.product.pk for hit in catalog_search(SearchQuery(text=other_kind, limit=100)).hits}
    assert found == other_kinds | {product.pk}, "the alt text's word finds it, as a description's would"
    cards = Client().get("/", {"q": other_kind, "page_size": 100}).content.decode()
    assert f'alt="{photo.alt_text}"' in cards
    # A word no product's title, brand, category or attributes has is not a catalog word:
    # the search leaves it out (embeddings.search.understanding), captions or not.
    assert catalog_search(SearchQuery(text="zanzibar", limit=5)).hits == []


def test_a_rejected_caption_changes_nothing(shop, standin):
    product = shop[0]
    Product.objects.filter(pk=product.pk).update(description="")
    photo = first_image(product)
    images_caption(image_ids=[photo.pk])
    suggestion = CaptionSuggestion.objects.get(image=photo)
    before = (
        Product.objects.filter(pk=product.pk).values().get(),
        ProductImage.objects.filter(pk=photo.pk).values().get(),
    )

    admin_client().post(
        "/admin/embeddings/captionsuggestion/", {"action": "reject", "_selected_action": [suggestion.pk]}
    )

    assert CaptionSuggestion.objects.get(pk=suggestion.pk).state == "rejected"
    after = (
        Product.objects.filter(pk=product.pk).values().get(),
        ProductImage.objects.filter(pk=photo.pk).values().get(),
    )
    assert after == before
    assert images_needing_captions() == [], "a rejected one is not asked for again by --missing"
    assert images_needing_captions(include_reviewed=True) == [photo.pk]


def test_a_failed_suggestion_cannot_be_accepted(shop, standin):
    product = shop[0]
    Product.objects.filter(pk=product.pk).update(description="")
    standin.script("chat", "500")
    images_caption(image_ids=[first_image(product).pk])
    suggestion = CaptionSuggestion.objects.get()

    response = admin_client().post(
        "/admin/embeddings/captionsuggestion/", {"action": "accept", "_selected_action": [suggestion.pk]}, follow=True
    )

    assert "0 captions accepted. 1 failed ones skipped" in response.content.decode()
    assert "failed (500): The server had an error" in response.content.decode(), "the reason is in the list"
    assert Product.objects.get(pk=product.pk).description == ""


def test_recaptioning_replaces_a_pending_suggestion(shop, standin):
    product = shop[0]
    photo = first_image(product)
    ProductImage.objects.filter(pk=photo.pk).update(alt_text="")
    images_caption(image_ids=[photo.pk])
    CaptionSuggestion.objects.update(alt_en="old")

    call_command("caption", "--products", str(product.pk), verbosity=0)

    (suggestion,) = CaptionSuggestion.objects.all()
    assert suggestion.alt_en != "old" and suggestion.state == "pending"


def test_the_command_captions_what_is_missing_and_sums_up(shop, standin, capsys):
    products = shop[:4]
    Product.objects.filter(pk__in=[p.pk for p in products]).update(description="")
    standin.script("chat", "500")

    call_command("caption", "--missing", "--limit", "3")

    out = capsys.readouterr()
    assert "2 suggested, 1 failed, 0 skipped" in out.out
    assert re.search(r"failed ×1: the caption service \(127\.0\.0\.1:\d+\) failed \(500\)", out.out)
    assert "Captioning" in out.err, "a progress bar"
    assert CaptionSuggestion.objects.filter(state="pending").count() == 2
    call_command("caption", "--missing", "--accept")
    out = capsys.readouterr().out
    assert "2 suggested, 0 failed" in out and "2 accepted and written (--accept)" in out
    # The failed one and the fourth were written and accepted; the first run's two still
    # wait for review (--accept accepts what it wrote, nothing else).
    assert Product.objects.filter(pk__in=[p.pk for p in products], description="").count() == 2


def test_the_command_fails_when_every_caption_fails_and_says_nothing_is_missing_when_so(shop, standin, capsys):
    Product.objects.filter(pk=shop[0].pk).update(description="")
    standin.script("chat", "401")
    with pytest.raises(CommandError, match="Every caption failed"):
        call_command("caption", "--missing", verbosity=0)
    assert "check VITRINE_CAPTION_API_KEY" in capsys.readouterr().out
    CaptionSuggestion.objects.all().delete()
    Product.objects.filter(pk=shop[0].pk).update(description="Back")
    call_command("caption", "--missing")
    assert "Nothing to caption" in capsys.readouterr().out
    with pytest.raises(CommandError, match="No product with id 999999"):
        call_command("caption", "--products", "999999")


def test_a_feed_without_a_description_keeps_the_accepted_one_and_one_with_a_description_replaces_it(shop, standin):
    from catalog.feeds.formats import feed_read
    from catalog.feeds.importer import feed_import

    product = shop[0]
    Product.objects.filter(pk=product.pk).update(description="")
    images_caption(image_ids=[first_image(product).pk])
    accept_through_the_admin(admin_client(), CaptionSuggestion.objects.get())
    accepted = Product.objects.get(pk=product.pk)

    def reimport(description: str) -> Product:
        feed = f"id,title,description,color\n{product.external_id},{product.title},{description},Teal\n"
        feed_import(feed_read(feed.encode(), format="csv"))
        return Product.objects.get(pk=product.pk)

    kept = reimport("")
    assert kept.description == accepted.description and kept.description
    assert kept.attributes["description_zh"] == accepted.attributes["description_zh"]
    assert kept.attributes["colour"] == "Teal", "the rest of the row was imported"
    assert reimport("From the feed").description == "From the feed"


def test_the_images_action_queues_only_the_selected_photos_lacking_text(shop, standin):
    photos = list(shop[0].images.order_by("position", "id"))
    ProductImage.objects.filter(pk__in=[p.pk for p in photos]).update(alt_text="", alt_text_zh="")
    chosen = [photos[-1].pk, first_image(shop[1]).pk]  # the second has its alt text, its product a description

    response = admin_client().post(
        "/admin/catalog/productimage/", {"action": "write_captions", "_selected_action": chosen}, follow=True
    )

    assert "1 photo queued for alt text and descriptions" in response.content.decode()
    assert list(CaptionSuggestion.objects.values_list("image_id", flat=True)) == [photos[-1].pk]


def test_the_products_list_finds_what_lacks_a_description_or_alt_text(shop):
    no_description, no_alt = shop[2], shop[3]
    Product.objects.filter(pk=no_description.pk).update(description="  ")
    ProductImage.objects.filter(pk=first_image(no_alt).pk).update(alt_text="")
    client = admin_client()

    listed = {}
    for value in ("description", "alt"):
        response = client.get("/admin/catalog/product/", {"missing": value})
        listed[value] = set(response.context["cl"].result_list.values_list("pk", flat=True))

    assert listed == {"description": {no_description.pk}, "alt": {no_alt.pk}}


def test_what_is_missing_leaves_out_products_off_sale_unless_named(shop):
    from embeddings.captions import images_needing_captions

    on_sale, off_sale = shop[4], shop[5]
    ProductImage.objects.filter(product__in=[on_sale, off_sale]).update(alt_text="")
    Product.objects.filter(pk=off_sale.pk).update(is_active=False)

    missing = set(images_needing_captions())
    named = set(images_needing_captions(product_ids=[off_sale.pk]))

    assert missing == set(on_sale.images.values_list("pk", flat=True))
    assert named == set(off_sale.images.values_list("pk", flat=True))

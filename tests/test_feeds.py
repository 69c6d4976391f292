"""Product feeds: every format, bad rows, image URLs through the safe fetcher (a local HTTP
server), re-import idempotence, changed feeds, and the import_feed command."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from catalog.feeds.formats import FeedError, feed_format, feed_read
from catalog.feeds.importer import feed_import
from catalog.models import Product, ProductImage
from tests import images

pytestmark = pytest.mark.django_db(transaction=True)

PHOTOS = {f"/p{n}.jpg": images.noise_jpeg(300 + n) for n in range(6)}


@pytest.fixture
def photo_server(photo_server):
    """Serves PHOTOS and a text file (anything else is a 404)."""
    photo_server.photos.update({**PHOTOS, "/notes.txt": b"just text"})
    return photo_server


def rows_of(text: str, fmt: str):
    return list(feed_read(text.encode(), format=fmt))


def test_csv_rows_map_columns_prices_and_image_lists():
    feed = (
        "id,title,brand,price,product_type,image_link,additional_image_link,color,tags\n"
        'sku-1,Red mug,Kito,12.5 EUR,Home > Kitchen > Mugs,https://cdn.example/1.jpg,"https://cdn.example/2.jpg, '
        'https://cdn.example/3.jpg",Red,"gift, ceramic"\n'
    )
    (row,) = rows_of(feed, "csv")
    assert row.problems == []
    assert row.external_id == "sku-1"
    assert row.fields["price"] == Decimal("12.50") and row.fields["currency"] == "EUR"
    assert row.fields["category"] == "Mugs" and row.fields["brand"] == "Kito"
    assert row.fields["attributes"] == {"colour": "Red", "tags": ["gift", "ceramic"]}
    assert row.image_urls == [f"https://cdn.example/{n}.jpg" for n in (1, 2, 3)]


def test_translation_columns_become_the_products_translations():
    feed = (
        "id,title,title_zh,description_zh,category,category_zh,color,color_zh,kind_zh,notes\n"
        "sku-1,Red mug,红色杯子,一个红色杯子。,Mugs,杯子,Red,红色,杯子,ignored\n"
    )
    (row,) = rows_of(feed, "csv")
    assert row.problems == []
    assert row.fields["title"] == "Red mug" and row.fields["category"] == "Mugs"
    assert row.fields["attributes"] == {
        "title_zh": "红色杯子",
        "description_zh": "一个红色杯子。",
        "category_zh": "杯子",
        "colour": "Red",
        "colour_zh": "红色",
        "kind_zh": "杯子",
    }


def test_merchant_center_tsv_and_json_lines_and_rss():
    tsv = "id\ttitle\tprice\tlink\timage_link\nA1\tBlue bag\t30.00 USD\thttps://shop.example/a1\thttps://cdn.example/a.jpg\n"
    (row,) = rows_of(tsv, "tsv")
    assert (row.external_id, row.fields["url"], row.fields["currency"]) == ("A1", "https://shop.example/a1", "USD")
    jsonl = json.dumps(
        {"sku": "J1", "name": "Hat", "price": 9, "currency": "eur", "images": ["https://x.example/h.jpg"]}
    )
    (row,) = rows_of(jsonl + "\n\n", "jsonl")
    assert (row.external_id, row.fields["title"], row.fields["price"], row.fields["currency"]) == (
        "J1",
        "Hat",
        Decimal("9.00"),
        "EUR",
    )
    rss = """<?xml version="1.0"?>
<rss xmlns:g="http://base.google.com/ns/1.0" version="2.0"><channel><title>Shop</title>
<item><g:id>R1</g:id><title>Green lamp</title><g:price>45.00 GBP</g:price><g:brand>Lumo</g:brand>
<g:image_link>https://cdn.example/r1.jpg</g:image_link>
<g:additional_image_link>https://cdn.example/r1b.jpg</g:additional_image_link>
<g:additional_image_link>https://cdn.example/r1c.jpg</g:additional_image_link>
<g:google_product_category>Home &amp; Garden &gt; Lighting</g:google_product_category></item>
</channel></rss>"""
    (row,) = rows_of(rss, "xml")
    assert row.problems == []
    assert (row.external_id, row.fields["brand"], row.fields["category"]) == ("R1", "Lumo", "Lighting")
    assert row.image_urls == [
        "https://cdn.example/r1.jpg",
        "https://cdn.example/r1b.jpg",
        "https://cdn.example/r1c.jpg",
    ]


def test_the_format_is_found_from_the_name_or_the_content():
    assert feed_format("feed.tsv", b"") == "tsv"
    assert feed_format("feed", b"<rss>") == "xml"
    assert feed_format("feed", b'{"id": 1}') == "jsonl"
    assert feed_format("feed", b"id\ttitle\n") == "tsv"
    assert feed_format("feed", b"id,title\n") == "csv"


def test_bad_rows_get_their_reasons_and_write_nothing():
    feed = (
        "id,title,price\n"
        "ok-1,Fine,10\n"
        ",No id,10\n"
        "no-title,,10\n"
        "bad-price,Bad price,ten euros\n"
        "negative,Negative,-3\n"
        "ok-1,Duplicate,11\n"
    )
    report = feed_import(rows_of(feed, "csv"))
    assert (report.created, report.failed) == (1, 5)
    reasons = {line.row: line.detail for line in report.lines if line.status == "failed"}
    assert "no id" in reasons[2]
    assert "no title" in reasons[3]
    assert "the price 'ten euros' is not a number" in reasons[4]
    assert "negative" in reasons[5]
    assert "appears again" in reasons[6]
    assert list(Product.objects.values_list("external_id", "price")) == [("ok-1", Decimal("10.00"))]
    lines = list(csv.reader(io.StringIO(report.csv())))
    assert lines[0] == ["row", "external_id", "status", "detail"] and len(lines) == 6


def test_unsafe_or_broken_feeds_are_refused_whole():
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        "<rss><channel><item><title>&lol2;</title></item></channel></rss>"
    )
    with pytest.raises(FeedError) as caught:
        rows_of(bomb, "xml")
    assert caught.value.code == "unsafe_xml"
    with pytest.raises(FeedError):
        list(feed_read(b"\xff\xfeid,title", format="csv"))
    assert rows_of('{"id": 1, "title": "x"}\n[1, 2]\nnot json\n', "jsonl")[1].problems == [
        "each line must be a JSON object"
    ]


def feed_with(server, *products) -> str:
    lines = ["id,title,price,image_link,additional_image_link"]
    for external_id, price, paths in products:
        urls = [f"{server.base}{p}" for p in paths]
        lines.append(f'{external_id},Product {external_id},{price},{urls[0] if urls else ""},"{",".join(urls[1:])}"')
    return "\n".join(lines) + "\n"


def test_images_are_fetched_and_a_second_import_changes_nothing(photo_server):
    feed = feed_with(photo_server, ("a", "10", ["/p0.jpg", "/p1.jpg"]), ("b", "20", ["/p2.jpg"]))
    first = feed_import(rows_of(feed, "csv"))
    assert (first.created, first.images_added, first.has_failures) == (2, 3, False)
    assert sorted(ProductImage.objects.values_list("source_url", flat=True)) == [
        f"{photo_server.base}/p{n}.jpg" for n in range(3)
    ]
    stamps = dict(Product.objects.values_list("external_id", "updated_at"))
    requests_before = dict(photo_server.hits)
    again = feed_import(rows_of(feed, "csv"))
    assert (again.unchanged, again.created, again.updated, again.images_added) == (2, 0, 0, 0)
    assert photo_server.hits == requests_before, "nothing downloaded again"
    assert dict(Product.objects.values_list("external_id", "updated_at")) == stamps, "nothing written"


def test_a_changed_feed_updates_what_changed(photo_server):
    feed_import(rows_of(feed_with(photo_server, ("a", "10", ["/p0.jpg", "/p1.jpg"]), ("b", "20", ["/p2.jpg"])), "csv"))
    changed = feed_with(photo_server, ("a", "12", ["/p0.jpg", "/p3.jpg"]), ("b", "20", ["/p2.jpg"]))
    report = feed_import(rows_of(changed, "csv"))
    assert (report.updated, report.unchanged, report.images_added, report.images_removed) == (1, 1, 1, 1)
    a = Product.objects.get(external_id="a")
    assert a.price == Decimal("12.00")
    assert sorted(a.images.values_list("source_url", flat=True)) == [
        f"{photo_server.base}/p0.jpg",
        f"{photo_server.base}/p3.jpg",
    ]


def test_unreachable_refused_and_non_image_urls_are_reported_on_their_row(photo_server, settings):
    feed = feed_with(photo_server, ("a", "10", ["/p0.jpg", "/missing.jpg", "/notes.txt"]))
    feed += "b,Product b,5,http://10.1.2.3/x.jpg,\n"
    report = feed_import(rows_of(feed, "csv"))
    assert (report.created, report.images_added, report.image_failures) == (2, 1, 3)
    details = [line.detail for line in report.lines if line.status == "image_failed"]
    assert any("HTTP 404" in d and "(http_error)" in d for d in details)
    assert any("/notes.txt" in d and "(not_an_image)" in d for d in details)
    assert any("10.1.2.3" in d and "(private_address)" in d for d in details)
    assert Product.objects.get(external_id="a").images.count() == 1


def test_the_command_summarises_writes_the_report_and_fails_on_failures(photo_server, tmp_path):
    good = tmp_path / "good.csv"
    good.write_text(feed_with(photo_server, ("a", "10", ["/p0.jpg"])))
    out = io.StringIO()
    call_command("import_feed", str(good), stdout=out, verbosity=0)
    assert "1 rows: 1 created" in out.getvalue()
    assert ProductImage.objects.get().state == "indexed"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n{"id": "y", "title": "Y", "price": "abc"}\n')
    report = tmp_path / "report.csv"
    with pytest.raises(CommandError) as caught:
        call_command("import_feed", str(bad), "--report", str(report), stdout=io.StringIO(), stderr=io.StringIO())
    assert "2 rows and 0 images failed" in str(caught.value)
    assert "the price 'abc' is not a number" in report.read_text()


@pytest.fixture
def merchandiser():
    from django.contrib.auth.models import Permission, User
    from django.test import Client

    user = User.objects.create_user("merch", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["add_feedimport", "view_feedimport"]))
    client = Client()
    client.force_login(user)
    return client


def test_a_feed_uploaded_in_the_admin_is_imported_with_a_downloadable_report(photo_server, merchandiser):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from catalog.models import FeedImport

    feed = feed_with(photo_server, ("a", "10", ["/p0.jpg", "/missing.jpg"])) + "b,Product b,lots,,\n"
    upload = SimpleUploadedFile("shop.csv", feed.encode(), "text/csv")
    response = merchandiser.post("/admin/catalog/feedimport/add/", {"file": upload, "format": ""})
    assert response.status_code == 302
    job = FeedImport.objects.get()
    assert (job.state, job.rows_total, job.rows_done) == ("done", 2, 2)
    assert (job.created, job.failed, job.images_added, job.image_failures) == (1, 1, 1, 1)
    listing = merchandiser.get("/admin/catalog/feedimport/").content.decode()
    assert "2 / 2 rows" in listing and "failed rows (CSV)" in listing
    report = merchandiser.get(f"/admin/catalog/feedimport/{job.pk}/report.csv")
    assert report["Content-Type"].startswith("text/csv")
    text = report.content.decode()
    assert "the price 'lots' is not a number" in text and "HTTP 404" in text
    assert ProductImage.objects.get().state == "indexed"


def test_an_unreadable_feed_fails_the_import_with_the_reason(merchandiser):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from catalog.models import FeedImport

    upload = SimpleUploadedFile("shop.xml", b"<rss><channel><item>", "application/xml")
    merchandiser.post("/admin/catalog/feedimport/add/", {"file": upload, "format": ""})
    job = FeedImport.objects.get()
    assert job.state == "failed" and "cannot be parsed" in job.error
    assert not Product.objects.exists()


def test_a_feed_over_the_size_limit_is_refused_in_the_form(merchandiser, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from catalog.models import FeedImport

    settings.VITRINE_MAX_FEED_BYTES = 1024
    upload = SimpleUploadedFile("big.csv", b"id,title\n" + b"x,y\n" * 1000, "text/csv")
    response = merchandiser.post("/admin/catalog/feedimport/add/", {"file": upload, "format": ""})
    assert response.status_code == 200 and "VITRINE_MAX_FEED_BYTES" in response.content.decode()
    assert not FeedImport.objects.exists()


def test_huge_prices_and_json_attribute_cells(photo_server):
    feed = 'id,title,price,attributes\nbig,Big,1e30,\njs,Json,5,"{""material"": ""cotton""}"\n'
    report = feed_import(rows_of(feed, "csv"))
    assert (report.created, report.failed) == (1, 1)
    assert "too large" in report.lines[0].detail
    assert Product.objects.get(external_id="js").attributes == {"material": "cotton"}


def test_re_importing_keeps_attributes_a_person_added(photo_server):
    feed = "id,title,color\na,A,red\n"
    feed_import(rows_of(feed, "csv"))
    product = Product.objects.get()
    product.attributes = {**product.attributes, "pattern": "striped"}  # an accepted tag
    product.save()
    again = feed_import(rows_of(feed, "csv"))
    assert again.unchanged == 1
    assert Product.objects.get().attributes == {"colour": "red", "pattern": "striped"}


def test_a_url_for_bytes_the_product_already_has_is_remembered(photo_server):
    from catalog import services

    product = services.product_upsert(external_id="a", title="Product a", price=10).product
    services.image_create(product=product, content=PHOTOS["/p0.jpg"])  # uploaded by hand, no URL
    feed = feed_with(photo_server, ("a", "10", ["/p0.jpg"]))
    first = feed_import(rows_of(feed, "csv"))
    assert (first.images_added, first.unchanged) == (0, 1)
    hits = dict(photo_server.hits)
    feed_import(rows_of(feed, "csv"))
    assert photo_server.hits == hits, "known by its URL now: not downloaded again"


def test_an_import_whose_message_or_worker_was_lost_is_resumed_by_the_schedule(photo_server, merchandiser):
    """Lost with a broker that restarted empty (queued), or with its worker (running, its
    heartbeat silent): beat's resume task sends both again; a live import is left alone."""
    from datetime import timedelta

    from django.core.files.base import ContentFile
    from django.utils import timezone

    from catalog.models import FeedImport
    from catalog.tasks import resume_stalled_imports
    from tests.conftest import workers_absent

    feed = feed_with(photo_server, ("a", "10", ["/p0.jpg"]))
    long_ago = timezone.now() - timedelta(hours=1)
    with workers_absent():
        lost = FeedImport.objects.create(file=ContentFile(feed.encode(), name="lost.csv"), name="lost.csv")
        FeedImport.objects.create(
            file=ContentFile(feed.encode(), name="dead.csv"), name="dead.csv", state="running", heartbeat_at=long_ago
        )
        FeedImport.objects.create(
            file=ContentFile(feed.encode(), name="live.csv"),
            name="live.csv",
            state="running",
            heartbeat_at=timezone.now(),
        )
        FeedImport.objects.filter(pk=lost.pk).update(created_at=long_ago)
    assert resume_stalled_imports() == 2  # eager here: the worker runs them at once
    states = dict(FeedImport.objects.values_list("name", "state"))
    assert states == {"lost.csv": "done", "dead.csv": "done", "live.csv": "running"}


def test_an_import_whose_photos_failed_says_so_and_links_the_products_left_without_one(photo_server, merchandiser):
    from django.contrib.auth.models import Permission, User
    from django.core.files.uploadedfile import SimpleUploadedFile

    from catalog.models import FeedImport

    feed = feed_with(
        photo_server,
        ("all-failed", "10", ["/missing.jpg", "/notes.txt"]),
        ("one-failed", "10", ["/p0.jpg", "/missing-too.jpg"]),
        ("fine", "10", ["/p1.jpg"]),
    )
    upload = SimpleUploadedFile("shop.csv", feed.encode(), "text/csv")
    merchandiser.post("/admin/catalog/feedimport/add/", {"file": upload, "format": ""})
    job = FeedImport.objects.get()
    assert (job.state, job.image_failures) == ("done", 3)

    listing = merchandiser.get("/admin/catalog/feedimport/").content.decode()
    detail = merchandiser.get(f"/admin/catalog/feedimport/{job.pk}/change/").content.decode()
    for html in (listing, detail):
        assert "Done with 3 failures" in html
        assert f'<a href="/admin/catalog/product/?photoless_from_feed={job.pk}" class="photoless">' in html
        assert "1 product without a photo" in html

    # The link's page needs the product list's permission.
    User.objects.get(username="merch").user_permissions.add(Permission.objects.get(codename="view_product"))
    products = merchandiser.get("/admin/catalog/product/", {"photoless_from_feed": job.pk})
    assert [p.external_id for p in products.context["cl"].result_list] == ["all-failed"]


def test_an_import_without_failures_is_plainly_done(photo_server, merchandiser):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("shop.csv", feed_with(photo_server, ("a", "10", ["/p0.jpg"])).encode(), "text/csv")
    merchandiser.post("/admin/catalog/feedimport/add/", {"file": upload, "format": ""})

    listing = merchandiser.get("/admin/catalog/feedimport/").content.decode()

    assert '<td class="field-outcome">Done</td>' in listing
    assert "without a photo</a>" not in listing


def test_the_feed_form_explains_the_columns_and_offers_a_sample_that_imports_cleanly(merchandiser):
    from django.contrib.staticfiles import finders

    html = merchandiser.get("/admin/catalog/feedimport/add/").content.decode()
    assert 'href="/static/vitrine/sample-feed.csv" download="vitrine-sample-feed.csv"' in html
    for column in ("id", "title", "price", "image_link", "additional_image_link", "is_active", "tags", "attributes"):
        assert f"<code>{column}</code>" in html, column
    assert "12.50 EUR" in html

    sample = Path(finders.find("vitrine/sample-feed.csv")).read_bytes()
    fetched: list[str] = []

    def fetch(url: str) -> bytes:  # the sample's photo links are examples: answer them as a shop's CDN would
        fetched.append(url)
        return images.noise_jpeg(len(fetched))

    rows = list(feed_read(sample, format=feed_format("sample-feed.csv", sample)))
    report = feed_import(rows, fetch=fetch)
    assert (report.created, report.failed, report.image_failures) == (4, 0, 0), report.csv()
    assert report.images_added == len(fetched) == 6
    mug = Product.objects.get(external_id="MUG-12")
    assert (mug.category, mug.price, mug.currency) == ("Mugs", Decimal("12.50"), "EUR")
    assert mug.attributes == {"colour": "blue", "material": "stoneware", "tags": ["gift", "dishwasher safe"]}
    assert Product.objects.get(external_id="HAT-3").title == "红色条纹帽子"
    assert Product.objects.get(external_id="VASE-1").is_active is False

"""The admin's bulk upload: grouping modes, zips (hostile ones too), duplicates, the page
and its JSON endpoints. (tests/test_browser.py drives the page in chromium.)"""

from __future__ import annotations

import io
import zipfile

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from catalog.bulk import bulk_add, product_key
from catalog.models import BulkUpload, BulkUploadItem, Product, ProductImage
from tests import images

pytestmark = pytest.mark.django_db(transaction=True)


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def bomb_png() -> bytes:
    """A small file that decodes to a huge image."""
    buffer = io.BytesIO()
    Image.new("L", (12000, 12000)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("mode", "name", "expected"),
    [
        ("per_file", "SKU-9.jpg", "SKU-9"),
        ("by_name", "SKU_1.jpg", "SKU"),
        ("by_name", "mug-red 2.png", "mug-red"),
        ("by_name", "single.jpg", "single"),
        ("by_folder", "boots/side.jpg", "boots"),
        ("by_folder", "loose.jpg", "loose"),
        ("existing", "whatever.jpg", "P-1"),
    ],
)
def test_file_names_choose_products(mode, name, expected):
    assert product_key(BulkUpload(mode=mode, product_external_id="P-1"), name) == expected


def test_grouping_by_name_makes_one_product_per_sku_and_queues_the_photos():
    upload = BulkUpload.objects.create(mode="by_name", category="shoes", brand="Kito")
    for number, name in enumerate(["SKU_1.jpg", "SKU_2.jpg", "OTHER_1.jpg"]):
        bulk_add(upload, name=name, content=images.noise_jpeg(number))
    assert dict(Product.objects.values_list("external_id", "category")) == {"SKU": "shoes", "OTHER": "shoes"}
    assert Product.objects.get(external_id="SKU").images.count() == 2
    assert set(ProductImage.objects.values_list("state", flat=True)) == {"indexed"}
    assert [item.state for item in upload.items.all()] == ["indexed"] * 3


def test_a_zip_with_traversal_names_non_images_a_bomb_and_duplicates():
    upload = BulkUpload.objects.create(mode="by_folder")
    content = zipped(
        {
            "boots/1.jpg": images.noise_jpeg(1),
            "boots/2.jpg": images.noise_jpeg(2),
            "boots/copy.jpg": images.noise_jpeg(1),  # the same bytes as boots/1.jpg
            "hats/1.jpg": images.noise_jpeg(1),  # the same bytes, another product
            "../../evil.jpg": images.noise_jpeg(3),
            "/abs/evil.jpg": images.noise_jpeg(4),
            "notes/readme.txt": b"hello",
            "big/bomb.png": bomb_png(),
            "__MACOSX/._1.jpg": b"junk",
        }
    )
    items = {item.name: item for item in bulk_add(upload, name="photos.zip", content=content)}
    assert len(items) == 8, "the __MACOSX junk is skipped"
    assert items["boots/1.jpg"].state == "indexed"
    assert "Already a photo of this product" in items["boots/copy.jpg"].note
    assert "Exact duplicate of image" in items["hats/1.jpg"].note and "of boots" in items["hats/1.jpg"].note
    assert "path traversal" in items["photos.zip/../../evil.jpg"].error
    assert "path traversal" in items["photos.zip//abs/evil.jpg"].error
    assert "not an image" in items["notes/readme.txt"].error
    assert "decompression bomb" in items["big/bomb.png"].error
    assert set(Product.objects.values_list("external_id", flat=True)) == {"boots", "hats"}
    assert ProductImage.objects.count() == 3


def test_zip_limits_are_enforced_while_reading(settings):
    upload = BulkUpload.objects.create(mode="per_file")
    settings.VITRINE_MAX_ZIP_MEMBERS = 2
    (item,) = bulk_add(upload, name="many.zip", content=zipped({f"{n}.jpg": images.noise_jpeg(n) for n in range(3)}))
    assert "holds 3 files; the limit is 2" in item.error
    settings.VITRINE_MAX_ZIP_MEMBERS = 100
    settings.VITRINE_MAX_IMAGE_BYTES = 2000
    big = zipped({"big.jpg": b"\xff" * 5000})
    (item,) = bulk_add(upload, name="big.zip", content=big)
    assert "VITRINE_MAX_IMAGE_BYTES" in item.error
    (item,) = bulk_add(upload, name="broken.zip", content=b"PK\x03\x04 not really a zip")
    assert "cannot be read" in item.error
    assert not ProductImage.objects.exists()


def test_members_refused_for_their_size_count_towards_the_zips_total(settings):
    """400 members of zeros, each over the per-file limit, once unpacked ~10 GiB against a
    1 GiB cap: scaled down here. Unpacking stops once the total is passed."""
    settings.VITRINE_MAX_IMAGE_BYTES = 2000
    settings.VITRINE_MAX_ZIP_BYTES = 10_000
    upload = BulkUpload.objects.create(mode="per_file")

    items = bulk_add(upload, name="bomb.zip", content=zipped({f"{n}.jpg": bytes(50_000) for n in range(40)}))

    assert len(items) == 5  # 4 refused for their size (2,001 bytes read each), then the total
    assert all("VITRINE_MAX_IMAGE_BYTES" in item.error for item in items[:4])
    assert "unpacks to more than" in items[4].error and "The rest is skipped" in items[4].error


def test_adding_to_an_existing_product_needs_it_to_exist():
    upload = BulkUpload.objects.create(mode="existing", product_external_id="nope")
    (item,) = bulk_add(upload, name="a.jpg", content=images.noise_jpeg(1))
    assert "There is no product 'nope'" in item.error
    assert not Product.objects.exists()


@pytest.fixture
def merchandiser():
    user = User.objects.create_user("merch", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="change_product"))
    client = Client()
    client.force_login(user)
    return client


def test_the_page_without_javascript_uploads_and_shows_every_file(merchandiser):
    files = [
        SimpleUploadedFile("A_1.jpg", images.noise_jpeg(1), "image/jpeg"),
        SimpleUploadedFile("A_2.jpg", images.noise_jpeg(2), "image/jpeg"),
        SimpleUploadedFile("bad.jpg", b"nope", "image/jpeg"),
    ]
    response = merchandiser.post("/admin/bulk-upload/", {"mode": "by_name", "files": files})
    assert response.status_code == 302
    html = merchandiser.get(response["Location"]).content.decode()
    assert html.count('data-state="indexed"') == 2 and html.count('data-state="failed"') == 1
    assert "not an image Vitrine can read" in html
    # A reload shows the latest upload again.
    assert merchandiser.get("/admin/bulk-upload/").content.decode().count("<tr data-item-id") == 3


def test_the_json_endpoints_start_add_poll_retry_and_remove(merchandiser):
    start = merchandiser.post("/admin/bulk-upload/start", {"mode": "per_file"})
    upload_id = start.json()["upload"]
    added = merchandiser.post(
        f"/admin/bulk-upload/{upload_id}/files",
        {"file": SimpleUploadedFile("x.jpg", images.noise_jpeg(5), "image/jpeg"), "path": "shoes/x.jpg"},
    )
    (item,) = added.json()["items"]
    assert (item["product"], item["state"]) == ("x", "indexed")
    ProductImage.objects.filter(pk=item["image_id"]).update(state="failed", error="boom")
    polled = merchandiser.get(f"/admin/bulk-upload/{upload_id}/items").json()["items"]
    assert [(i["state"], i["reason"]) for i in polled] == [("failed", "boom")]
    retried = merchandiser.post(f"/admin/bulk-upload/items/{item['id']}/retry").json()["item"]
    assert retried["state"] == "indexed"
    ProductImage.objects.filter(pk=item["image_id"]).update(state="failed", error="boom")
    assert merchandiser.post(f"/admin/bulk-upload/items/{item['id']}/remove").json() == {"removed": item["id"]}
    assert not BulkUploadItem.objects.exists() and not ProductImage.objects.exists()
    assert merchandiser.post(f"/admin/bulk-upload/items/{item['id']}/explode").status_code == 404


def test_the_endpoints_need_the_permission_and_uploads_are_private(merchandiser):
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    client = Client()
    client.force_login(viewer)
    assert client.get("/admin/bulk-upload/").status_code == 403
    assert client.post("/admin/bulk-upload/start", {"mode": "per_file"}).status_code == 403
    upload_id = merchandiser.post("/admin/bulk-upload/start", {"mode": "per_file"}).json()["upload"]
    other = User.objects.create_user("other", password="pw", is_staff=True)
    other.user_permissions.add(Permission.objects.get(codename="change_product"))
    client.force_login(other)
    assert client.get(f"/admin/bulk-upload/{upload_id}/items").status_code == 404


def test_large_bodies_are_refused_before_reading_unless_staff_sends_them(merchandiser, settings):
    big = str(settings.VITRINE_MAX_IMAGE_BYTES + 5 * 1024 * 1024)
    anonymous = Client().post("/admin/bulk-upload/", data=b"x", content_type="application/zip", CONTENT_LENGTH=big)
    assert anonymous.status_code == 413
    assert (
        merchandiser.post(
            "/admin/bulk-upload/", data=b"x", content_type="application/zip", CONTENT_LENGTH=big
        ).status_code
        != 413
    )
    settings.VITRINE_MAX_ZIP_BYTES = 1024
    assert (
        merchandiser.post(
            "/admin/bulk-upload/", data=b"x", content_type="application/zip", CONTENT_LENGTH=big
        ).status_code
        == 413
    )


def test_removing_a_failed_item_keeps_an_image_the_product_already_had(merchandiser):
    product = Product.objects.create(external_id="keep", title="Keep")
    from catalog import services

    existing = services.image_create(product=product, content=images.noise_jpeg(9)).image
    ProductImage.objects.filter(pk=existing.pk).update(state="failed", error="boom")
    upload = BulkUpload.objects.create(mode="existing", product_external_id="keep", user=None)
    (item,) = bulk_add(upload, name="again.jpg", content=images.noise_jpeg(9))
    assert item.image_id == existing.pk and not item.created_image
    from catalog.bulk import bulk_item_remove

    item.image.refresh_from_db()
    bulk_item_remove(item)
    assert ProductImage.objects.filter(pk=existing.pk).exists()


def test_an_oversized_plain_file_is_refused_without_reading_it(settings):
    settings.VITRINE_MAX_IMAGE_BYTES = 1000
    upload = BulkUpload.objects.create(mode="per_file")
    (item,) = bulk_add(upload, name="huge.jpg", file=SimpleUploadedFile("huge.jpg", b"\xff" * 5000, "image/jpeg"))
    assert "the limit is" in item.error

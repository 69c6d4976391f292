"""Bulk upload: many photos (or zips of them) at once, each becoming an image of the
product its name says, each recorded as an item with its own outcome.

Zips are read in memory, never extracted to disk: member names only choose products, so
a hostile name ("../../etc/passwd") cannot write anywhere; it is refused all the same. The
number of members, every member's size and the total unpacked size are capped while
reading (a zip's declared sizes can lie), and every member goes through the intake.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.conf import settings
from django.db import transaction

from catalog import services, signals
from catalog.intake import ImageRejected
from catalog.models import BulkUpload, BulkUploadItem, Product, ProductImage

logger = logging.getLogger(__name__)

NUMBERED = re.compile(r"^(?P<key>.+?)[_\-\s.]\d{1,4}$")
ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class _File:
    name: str
    content: bytes | None
    error: str = ""


def product_key(upload: BulkUpload, name: str) -> str:
    """The external id of the product a file belongs to."""
    if upload.mode == BulkUpload.Mode.EXISTING:
        return upload.product_external_id
    path = PurePosixPath(name.replace("\\", "/"))
    stem = path.stem.strip()
    if upload.mode == BulkUpload.Mode.BY_FOLDER and len(path.parts) > 1:
        return path.parts[-2].strip()
    if upload.mode == BulkUpload.Mode.BY_NAME:
        match = NUMBERED.match(stem)
        return match["key"] if match else stem
    return stem


def bulk_add(upload: BulkUpload, *, name: str, content: bytes | None = None, file=None) -> list[BulkUploadItem]:
    """Add one uploaded file (an image, or a zip of images), given as bytes or as a
    seekable file (an upload spooled to disk is then never read whole); returns its items."""
    source = file if file is not None else io.BytesIO(content or b"")
    source.seek(0)
    head = source.read(4)
    source.seek(0)
    if name.lower().endswith(".zip") or head == ZIP_MAGIC:
        files = _zip_members(name, source)  # one member in memory at a time
    else:
        size = file.size if file is not None else len(content or b"")
        limit = settings.VITRINE_MAX_IMAGE_BYTES
        if size > limit:
            files = [_File(name, None, f"The file is {size / 1048576:.1f} MB; the limit is {limit / 1048576:.1f} MB.")]
        else:
            files = [_File(name, source.read())]
    items = []
    # The images of a zip are queued together, in full batches, once all are in.
    with signals.deferred():
        for file in files:
            items.append(_add_one(upload, file))
    # In the embedded mode they are indexed by now: report their current state.
    for item in items:
        if item.image_id:
            item.image.refresh_from_db(fields=["state", "error", "embedding_space"])
    return items


def _zip_members(name: str, source) -> Iterator[_File]:
    max_members = settings.VITRINE_MAX_ZIP_MEMBERS
    max_total = settings.VITRINE_MAX_ZIP_BYTES
    max_member = settings.VITRINE_MAX_IMAGE_BYTES
    try:
        archive = zipfile.ZipFile(source)
        members = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        yield _File(name, None, f"The zip file cannot be read: {exc}.")
        return
    members = [m for m in members if not _is_junk(m.filename)]
    if len(members) > max_members:
        message = f"The zip holds {len(members)} files; the limit is {max_members} (VITRINE_MAX_ZIP_MEMBERS)."
        yield _File(name, None, message)
        return
    total = 0
    for info in members:
        member_name = f"{name}/{info.filename}"
        path = PurePosixPath(info.filename.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", info.filename):
            yield _File(member_name, None, "Refused: the name points outside the zip (path traversal).")
            continue
        if info.flag_bits & 0x1:
            yield _File(member_name, None, "Refused: the file is encrypted.")
            continue
        try:
            with archive.open(info) as handle:
                data = handle.read(max_member + 1)  # never more than this, whatever the header says
        except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, EOFError) as exc:
            yield _File(member_name, None, f"The file cannot be unpacked: {exc}.")
            continue
        # Every byte unpacked counts, refused members' too: a zip of many oversized
        # members must not make the server decompress far more than the total limit.
        total += len(data)
        if total > max_total:
            message = f"The zip unpacks to more than {max_total / 1048576:.0f} MB (VITRINE_MAX_ZIP_BYTES)."
            yield _File(member_name, None, message + " The rest is skipped.")
            break
        if len(data) > max_member:
            message = f"Unpacked, the file is over the {max_member / 1048576:.0f} MB limit (VITRINE_MAX_IMAGE_BYTES)."
            yield _File(member_name, None, message)
            continue
        yield _File(info.filename, data)


def _is_junk(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return any(part == "__MACOSX" or part.startswith(".") and part not in (".", "..") for part in parts)


def _add_one(upload: BulkUpload, file: _File) -> BulkUploadItem:
    external_id = product_key(upload, file.name)[:255]
    item = BulkUploadItem(upload=upload, name=file.name[:500], product_external_id=external_id)
    if file.error:
        item.error = file.error
        item.save()
        return item
    if not external_id:
        item.error = "No product id can be made from this file name."
        item.save()
        return item
    try:
        with transaction.atomic():
            product = Product.objects.filter(external_id=external_id).first()
            if product is None:
                if upload.mode == BulkUpload.Mode.EXISTING:
                    raise ImageRejected("no_product", f"There is no product {external_id!r}.")
                product = services.product_upsert(
                    external_id=external_id,
                    title=external_id.replace("_", " ").replace("-", " ").strip() or external_id,
                    category=upload.category,
                    brand=upload.brand,
                ).product
            result = services.image_create(product=product, content=file.content)
            twin = (
                ProductImage.objects.filter(sha256=result.image.sha256)
                .exclude(pk=result.image.pk)
                .select_related("product")
                .first()
            )
            if not result.is_created:
                item.note = f"Already a photo of this product (image {result.image.pk})."
            elif twin is not None:
                item.note = f"Exact duplicate of image {twin.pk} of {twin.product.external_id}."
            item.image = result.image
            item.created_image = result.is_created
            item.save()
    except ImageRejected as exc:
        item.error = exc.message
        item.save()
    return item


def bulk_item_retry(item: BulkUploadItem) -> bool:
    """Queue a failed image again (a file refused at intake must be uploaded again)."""
    if item.image is None or item.image.state != ProductImage.State.FAILED:
        return False
    services.images_reembed(image_ids=[item.image_id])
    return True


def bulk_item_remove(item: BulkUploadItem) -> None:
    """Forget the item; a failed image this upload added goes too (an indexed one, or one
    the product had before, stays in the catalog)."""
    with transaction.atomic():
        if item.created_image and item.image is not None and item.image.state == ProductImage.State.FAILED:
            services.image_delete(image=item.image)
        item.delete()

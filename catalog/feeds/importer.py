"""Importing a read feed: products upserted, their images fetched through the safe fetcher.

Importing the same feed again changes nothing (no writes, no downloads: an image is known by
its URL); a changed feed updates what changed, and images whose URL left the feed are
removed (the services tell the index, like every other write).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction

from catalog import services
from catalog.feeds.formats import FeedRow
from catalog.intake import ImageRejected
from catalog.models import Product, ProductImage
from searchsite.errors import InputRejected
from searchsite.fetch import url_fetch

logger = logging.getLogger(__name__)

FETCH_THREADS = 8
# Rows whose image downloads run while the previous chunk is written.
CHUNK = 32


@dataclass
class ReportLine:
    row: int
    external_id: str
    status: str  # created, updated, unchanged, failed, image_failed
    detail: str = ""


@dataclass
class FeedReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    images_added: int = 0
    images_removed: int = 0
    image_failures: int = 0
    new_image_ids: list[int] = field(default_factory=list)
    lines: list[ReportLine] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.created + self.updated + self.unchanged + self.failed

    @property
    def has_failures(self) -> bool:
        return bool(self.failed or self.image_failures)

    def summary(self) -> str:
        return (
            f"{self.rows} rows: {self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.failed} failed; images: {self.images_added} added, {self.images_removed} removed, "
            f"{self.image_failures} failed"
        )

    def csv(self) -> str:
        """The per-row report (every row that failed or had an image fail), as CSV."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["row", "external_id", "status", "detail"])
        for line in self.lines:
            if line.status in ("failed", "image_failed"):
                writer.writerow([line.row, line.external_id, line.status, line.detail])
        return out.getvalue()


Fetcher = Callable[[str], bytes]


def _fetch_content(url: str) -> bytes:
    return url_fetch(url).content


def feed_import(
    rows: Iterable[FeedRow],
    *,
    fetch: Fetcher = _fetch_content,
    on_row: Callable[[FeedRow], None] | None = None,
    report: FeedReport | None = None,
) -> FeedReport:
    """Upsert every good row's product and its images; report every problem per row.

    A row with a problem writes nothing. An image URL that cannot be fetched or is not an
    image is reported on its row; the product and its other images are still saved.
    ``report`` (optional) is filled as rows go, so a caller still has it if this raises.
    """
    report = report if report is not None else FeedReport()
    seen: set[str] = set()
    chunk: list[FeedRow] = []
    pending = None  # the previous chunk, its downloads in flight while the next one is read
    with ThreadPoolExecutor(max_workers=FETCH_THREADS) as pool:
        for row in rows:
            if row.external_id and row.external_id in seen:
                row.problems.append(f"the id {row.external_id!r} appears again (only its first row is imported)")
            seen.add(row.external_id)
            chunk.append(row)
            if len(chunk) >= CHUNK:
                prepared = _prepare_chunk(chunk, fetch, pool)
                if pending:
                    _import_chunk(*pending, report, on_row)
                pending, chunk = prepared, []
        prepared = _prepare_chunk(chunk, fetch, pool)
        if pending:
            _import_chunk(*pending, report, on_row)
        _import_chunk(*prepared, report, on_row)
    return report


def _prepare_chunk(chunk: list[FeedRow], fetch: Fetcher, pool) -> tuple:
    """Start downloading the chunk's new image URLs (known ones are never fetched again)."""
    good = [row for row in chunk if not row.problems]
    known = _known_urls([row.external_id for row in good])
    wanted = {url for row in good for url in row.image_urls if url not in known.get(row.external_id, {})}
    downloads = {url: pool.submit(_download, fetch, url) for url in wanted}
    return chunk, known, downloads


def _import_chunk(chunk, known, downloads, report: FeedReport, on_row) -> None:
    for row in chunk:
        if row.problems:
            report.failed += 1
            report.lines.append(ReportLine(row.number, row.external_id, "failed", "; ".join(row.problems)))
        else:
            _import_row(row, known.get(row.external_id, {}), downloads, report)
        if on_row:
            on_row(row)


def _known_urls(external_ids: list[str]) -> dict[str, dict[str, int]]:
    """For each product, its images that came from a URL: {url: image id}."""
    known: dict[str, dict[str, int]] = {}
    images = ProductImage.objects.filter(product__external_id__in=external_ids).exclude(source_url="")
    for external_id, url, image_id in images.values_list("product__external_id", "source_url", "pk"):
        known.setdefault(external_id, {})[url] = image_id
    return known


def _download(fetch: Fetcher, url: str) -> bytes | InputRejected:
    try:
        return fetch(url)
    except InputRejected as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - one bad URL must not stop the feed
        logger.warning("Fetching %s failed unexpectedly: %s", url, exc)
        return InputRejected("fetch_failed", f"could not be downloaded ({exc.__class__.__name__})")


def _import_row(row: FeedRow, known: dict[str, int], downloads: dict, report: FeedReport) -> None:
    fields = row.fields
    if "attributes" in fields:
        # The feed's attributes are added to the product's own (tags a person accepted stay).
        existing = Product.objects.filter(external_id=row.external_id).values_list("attributes", flat=True).first()
        if isinstance(existing, dict):
            fields = {**fields, "attributes": {**existing, **fields["attributes"]}}
    if fields.get("description") == "":
        # An empty cell is a feed without a description, not an order to erase one: the
        # product keeps the one it has (typed in the admin, or a generated one accepted).
        fields = {name: value for name, value in fields.items() if name != "description"}
    try:
        with transaction.atomic():
            result = services.product_upsert(external_id=row.external_id, **fields)
    except ValidationError as exc:
        report.failed += 1
        detail = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in exc.message_dict.items())
        report.lines.append(ReportLine(row.number, row.external_id, "failed", detail))
        return
    product = result.product
    status = result.status
    for position, url in enumerate(row.image_urls):
        if url in known:
            continue
        content = downloads[url].result()
        if isinstance(content, InputRejected):
            _image_failed(report, row, url, content)
            continue
        try:
            with transaction.atomic():
                created = services.image_create(product=product, content=content, source_url=url, position=position)
                if created.needs_indexing:
                    report.new_image_ids.append(created.image.pk)
                if not created.is_created and not created.image.source_url:
                    # The product already had these bytes (uploaded by hand): now known by this URL.
                    ProductImage.objects.filter(pk=created.image.pk).update(source_url=url)
        except ImageRejected as exc:
            _image_failed(report, row, url, exc)
            continue
        if created.is_created:
            report.images_added += 1
            status = "updated" if status == "unchanged" else status
    gone = [image_id for url, image_id in known.items() if url not in row.image_urls]
    if gone:
        with transaction.atomic():
            removed = [services.image_delete(image=image) for image in ProductImage.objects.filter(pk__in=gone)]
        report.images_removed += len(removed)
        status = "updated" if status == "unchanged" else status
    setattr(report, status, getattr(report, status) + 1)
    report.lines.append(ReportLine(row.number, row.external_id, status))


def _image_failed(report: FeedReport, row: FeedRow, url: str, exc: InputRejected) -> None:
    report.image_failures += 1
    detail = f"{url}: {exc.message} ({exc.code})"
    report.lines.append(ReportLine(row.number, row.external_id, "image_failed", detail))

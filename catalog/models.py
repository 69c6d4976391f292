from __future__ import annotations

import uuid
from pathlib import Path

from django.db import models
from django.urls import reverse

from catalog.validators import attributes_validate, external_id_validate


class Product(models.Model):
    """A product of the shop. ``external_id`` is the shop's own key and the upsert key."""

    external_id = models.CharField(max_length=255, unique=True, validators=[external_id_validate])
    title = models.CharField(max_length=500)
    description = models.TextField(blank=True)
    brand = models.CharField(max_length=200, blank=True, db_index=True)
    category = models.CharField(max_length=200, blank=True, db_index=True)
    price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True, help_text="ISO 4217 code, e.g. EUR")
    url = models.URLField(max_length=2000, blank=True, help_text="The product's page in the shop")
    attributes = models.JSONField(
        default=dict,
        blank=True,
        validators=[attributes_validate],
        help_text='Facts to filter and facet on, e.g. {"colour": "red", "tags": ["gift"]}',
    )
    is_active = models.BooleanField(default=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.title} ({self.external_id})"

    def get_absolute_url(self) -> str:
        """The shoppers' page of the product (the admin's "View on site"). By the URL's
        name: the catalog does not import the storefront."""
        return reverse("product", args=[self.pk])


def image_upload_path(instance: ProductImage, filename: str) -> str:
    # Content-addressed: the same bytes always land on the same name, and two products
    # sharing a photo share the file.
    digest = instance.sha256
    return f"images/{digest[:2]}/{digest[2:4]}/{filename}"


class ProductImage(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        INDEXED = "indexed", "Indexed"
        FAILED = "failed", "Failed"

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="images")
    file = models.FileField(upload_to=image_upload_path, max_length=500)
    source_url = models.URLField(max_length=2000, blank=True)
    sha256 = models.CharField(max_length=64, db_index=True)
    format = models.CharField(max_length=10)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    byte_size = models.PositiveBigIntegerField()
    position = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING, db_index=True)
    error = models.TextField(blank=True, help_text="Why indexing failed, in words a person can act on")
    embedding_space = models.CharField(max_length=300, blank=True, help_text="The space it was indexed in")
    indexed_at = models.DateTimeField(null=True, blank=True)
    # When its embedding task last reached the broker; pending with none: the outbox (a
    # task that could not be sent), which a scheduled task sends again.
    queued_at = models.DateTimeField(null=True, blank=True)
    # Set at indexing when an older image is the same photo (same bytes, or a re-saved,
    # resized copy: cosine at or above VITRINE_NEAR_DUPLICATE_THRESHOLD).
    duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    duplicate_score = models.FloatField(null=True, blank=True)
    duplicate_kept = models.BooleanField(default=False, help_text="A person decided to keep it anyway")
    # What the photo shows, for people who cannot see it (the pages' ``alt``), in the
    # catalog's languages (catalog.translations: the suffix ``_zh``). Typed by a person, or a
    # generated caption a person accepted (embeddings.captions).
    alt_text = models.CharField(max_length=300, blank=True, help_text="The photo described in a sentence (English)")
    alt_text_zh = models.CharField(max_length=300, blank=True, help_text="The same in Simplified Chinese")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["product_id", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["product", "sha256"], name="unique_image_per_product"),
        ]

    def __str__(self) -> str:
        return f"image {self.pk} of {self.product_id} ({self.state})"

    @property
    def duplicate_kind(self) -> str:
        if self.duplicate_of_id is None:
            return ""
        return "exact" if self.duplicate_of and self.duplicate_of.sha256 == self.sha256 else "near"

    # Thumbnails for pages (catalog.thumbnails makes them on first request).
    @property
    def thumbnail_url(self) -> str:
        from catalog.thumbnails import thumbnail_url

        return thumbnail_url(self.sha256, 320)

    @property
    def large_thumbnail_url(self) -> str:
        from catalog.thumbnails import thumbnail_url

        return thumbnail_url(self.sha256, 640)

    @property
    def thumbnail_dimensions(self) -> tuple[int, int]:
        from catalog.thumbnails import thumbnail_dimensions

        return thumbnail_dimensions(self.width, self.height, 320)

    @property
    def large_thumbnail_dimensions(self) -> tuple[int, int]:
        from catalog.thumbnails import thumbnail_dimensions

        return thumbnail_dimensions(self.width, self.height, 640)


def feed_upload_path(instance: FeedImport, filename: str) -> str:
    # An unguessable name: media may be served publicly, and feeds can hold private columns.
    suffix = "".join(c for c in Path(filename).suffix.lower() if c.isalnum() or c == ".")[:10]
    return f"feeds/{uuid.uuid4().hex}{suffix}"


class FeedImport(models.Model):
    """A feed file uploaded in the admin and its import (run by a worker), with the report."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    file = models.FileField(upload_to=feed_upload_path, max_length=500)
    name = models.CharField(max_length=255, blank=True)
    format = models.CharField(max_length=10, blank=True, help_text="Empty: from the file name or its content")
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    rows_total = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    images_added = models.PositiveIntegerField(default=0)
    images_removed = models.PositiveIntegerField(default=0)
    image_failures = models.PositiveIntegerField(default=0)
    report = models.TextField(blank=True, help_text="The rows that failed, as CSV")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when a worker claims the import and as it goes: a stale one lost its worker.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"feed {self.name or self.pk} ({self.state})"


class BulkUpload(models.Model):
    """One drop of files (or zips) on the admin's bulk upload page."""

    class Mode(models.TextChoices):
        PER_FILE = "per_file", "One product per file (the file name is the product id)"
        BY_NAME = "by_name", "Group by file name: SKU_1.jpg, SKU_2.jpg → product SKU"
        BY_FOLDER = "by_folder", "Group by folder (in a zip or a dropped folder)"
        EXISTING = "existing", "Add every photo to one existing product"

    user = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.PER_FILE)
    product_external_id = models.CharField(max_length=255, blank=True)
    category = models.CharField(max_length=200, blank=True)
    brand = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"bulk upload {self.pk} ({self.get_mode_display()})"


class BulkUploadItem(models.Model):
    """A file of a bulk upload: its image (then the image's state says the rest), or why
    it was refused."""

    upload = models.ForeignKey(BulkUpload, on_delete=models.CASCADE, related_name="items")
    name = models.CharField(max_length=500)
    product_external_id = models.CharField(max_length=255, blank=True)
    image = models.ForeignKey(ProductImage, null=True, blank=True, on_delete=models.SET_NULL)
    created_image = models.BooleanField(default=False, help_text="This file added the image (not already there)")
    error = models.TextField(blank=True)
    note = models.CharField(max_length=500, blank=True, help_text="e.g. an exact duplicate of another image")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"

    @property
    def state(self) -> str:
        if self.error:
            return "failed"
        return self.image.state if self.image else "removed"

    @property
    def reason(self) -> str:
        return self.error or (self.image.error if self.image else "")

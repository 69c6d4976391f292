"""Embedding tasks, run eagerly: every image ends indexed, or failed with a reason."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from catalog import services
from catalog.models import ProductImage
from embeddings import indexing, tasks
from embeddings.index import IndexUnavailable, get_index
from embeddings.model import get_encoder
from tests import images
from tests.conftest import workers_absent

pytestmark = pytest.mark.django_db(transaction=True)


def make_images(count: int, external_id: str = "sku-1") -> list[ProductImage]:
    """Pending images (no worker took them): each test runs the task itself."""
    product = services.product_upsert(external_id=external_id, title="Mug", category="kitchen").product
    with workers_absent():
        return [services.image_create(product=product, content=images.noise_jpeg(i)).image for i in range(count)]


def test_embed_images_indexes_each_image_in_the_current_space():
    batch = make_images(3)

    tasks.embed_images([image.pk for image in batch])

    space = get_encoder().space
    rows = ProductImage.objects.order_by("pk")
    assert [(r.state, r.error, r.embedding_space) for r in rows] == [("indexed", "", space.id)] * 3
    assert all(r.indexed_at is not None for r in rows)
    assert get_index().count(space) == 3


def test_an_image_already_indexed_in_this_space_is_skipped():
    batch = make_images(2)
    ids = [image.pk for image in batch]
    tasks.embed_images(ids)

    report = indexing.images_embed(image_ids=ids)

    assert report.skipped == ids
    assert report.indexed == []


def test_a_damaged_stored_file_fails_with_a_reason_and_the_rest_are_indexed():
    good, broken = make_images(2)
    with open(broken.file.path, "wb") as handle:
        handle.write(images.truncated_jpeg())

    tasks.embed_images([good.pk, broken.pk])

    good.refresh_from_db()
    broken.refresh_from_db()
    assert good.state == "indexed"
    assert broken.state == "failed"
    assert "damaged or incomplete" in broken.error


@pytest.mark.parametrize("threads", [0, 2])
def test_decoding_beside_the_model_gives_each_image_its_own_vector(settings, threads):
    """More photos than one forward pass takes, one of them damaged mid-way: every other
    one gets the vector of its own pixels, whether decoded on threads or not."""
    settings.VITRINE_DECODE_THREADS = threads
    batch = make_images(indexing.PIPELINE_CHUNK + 5)
    broken = batch[indexing.PIPELINE_CHUNK - 1]
    with open(broken.file.path, "wb") as handle:
        handle.write(images.truncated_jpeg())

    report = indexing.images_embed(image_ids=[image.pk for image in batch])

    assert list(report.failed) == [broken.pk]
    good = [image for image in batch if image.pk != broken.pk]
    assert report.indexed == [image.pk for image in good]
    encoder = get_encoder()
    stored = get_index().vectors(encoder.space, report.indexed)
    for number, image in enumerate(batch):
        if image.pk != broken.pk:
            expected = encoder.images_encode([Image.open(io.BytesIO(images.noise_jpeg(number))).convert("RGB")])[0]
            assert stored[image.pk] @ expected == pytest.approx(1.0, abs=1e-5)


def test_a_missing_stored_file_fails_with_a_reason():
    (image,) = make_images(1)
    image.file.storage.delete(image.file.name)

    tasks.embed_images([image.pk])

    image.refresh_from_db()
    assert image.state == "failed"
    assert image.error == "The stored image file is missing; upload the image again."


def test_ids_of_deleted_images_are_ignored():
    (image,) = make_images(1)
    tasks.embed_images([image.pk, 999_999])
    image.refresh_from_db()
    assert image.state == "indexed"
    assert get_index().count(get_encoder().space) == 1


def test_an_unavailable_store_is_retried_then_recorded_on_the_rows(monkeypatch):
    (image,) = make_images(1)
    calls = []

    def store_down(*, image_ids):
        calls.append(image_ids)
        raise IndexUnavailable("Qdrant at http://qdrant:6333 did not answer")

    monkeypatch.setattr(indexing, "images_embed", store_down)
    monkeypatch.setattr(tasks, "retry_countdown", lambda retries: 0)

    tasks.embed_images.apply(args=[[image.pk]])

    image.refresh_from_db()
    assert len(calls) == tasks.MAX_RETRIES + 1
    assert image.state == "failed"
    assert "stayed unavailable after 8 retries" in image.error
    assert "http://qdrant:6333" in image.error


def test_a_store_that_comes_back_is_used_on_retry(monkeypatch):
    (image,) = make_images(1)
    real_embed = indexing.images_embed
    attempts = []

    def flaky(*, image_ids):
        attempts.append(1)
        if len(attempts) < 3:
            raise IndexUnavailable("busy")
        return real_embed(image_ids=image_ids)

    monkeypatch.setattr(indexing, "images_embed", flaky)
    monkeypatch.setattr(tasks, "retry_countdown", lambda retries: 0)

    tasks.embed_images.apply(args=[[image.pk]])

    image.refresh_from_db()
    assert len(attempts) == 3
    assert image.state == "indexed"


def test_retry_backoff_grows_and_is_capped():
    assert all(0 <= tasks.retry_countdown(0) <= tasks.RETRY_BASE_SECONDS for _ in range(50))
    assert max(tasks.retry_countdown(20) for _ in range(200)) <= tasks.RETRY_CAP_SECONDS


def test_a_retry_never_waits_past_half_the_visibility_timeout(settings):
    """A waiting retry is held unacknowledged; past the visibility timeout the broker would
    hand the same batch out again."""
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, "visibility_timeout": 300}
    waits = [tasks.retry_countdown(20) for _ in range(200)]
    assert max(waits) <= 150 and max(waits) > 100  # capped there, not below


def test_product_changes_reach_the_payload_of_its_points():
    (image,) = make_images(1)
    tasks.embed_images([image.pk])
    from embeddings.index import IndexFilters

    services.product_upsert(external_id="sku-1", title="Mug", category="garden")  # tells the index itself

    space = get_encoder().space
    vector = get_index().vectors(space, [image.pk])[image.pk]
    hits = get_index().query(space, vector, filters=IndexFilters(categories=("garden",)), limit=5, offset=0)
    assert [h.image_id for h in hits] == [image.pk]


def test_a_small_batch_takes_along_other_images_waiting_and_their_tasks_then_skip(settings):
    """Uploads one file per request (the bulk page, the API) share a forward pass."""
    settings.VITRINE_EMBED_COALESCE_SECONDS = 2.0
    batch = make_images(5)

    tasks.embed_images([batch[0].pk])

    assert set(ProductImage.objects.values_list("state", flat=True)) == {"indexed"}
    assert get_index().count(get_encoder().space) == 5
    report = indexing.images_embed(image_ids=[batch[3].pk])  # its own task, later
    assert report.skipped == [batch[3].pk]


def test_images_taken_along_are_claimed_once_and_only_while_coalescing_is_on(settings):
    settings.VITRINE_EMBED_BATCH_SIZE = 3
    batch = make_images(6)
    ids = [image.pk for image in batch]

    settings.VITRINE_EMBED_COALESCE_SECONDS = 0
    assert indexing.images_waiting_claim(exclude=ids[:1]) == []

    settings.VITRINE_EMBED_COALESCE_SECONDS = 2.0
    assert indexing.images_waiting_claim(exclude=ids[:1]) == ids[1:3]  # room for two
    assert indexing.images_waiting_claim(exclude=ids[1:2]) == [ids[0], ids[3]]  # not 2 again
    assert indexing.images_waiting_claim(exclude=ids[:3]) == []  # a full batch takes none


def test_only_a_trickle_waits_in_the_queue_and_only_with_a_broker(settings):
    from embeddings.receivers import coalesce_seconds

    settings.VITRINE_EMBED_COALESCE_SECONDS = 2.0
    assert coalesce_seconds(1) == 0.0  # the tests run in-process: embedded at once
    settings.CELERY_TASK_ALWAYS_EAGER = False
    assert coalesce_seconds(1) == 2.0
    assert coalesce_seconds(settings.VITRINE_EMBED_BATCH_SIZE) == 0.0


def test_each_state_change_touches_the_rows_updated_at():
    """The admin's lists and the API's `updated_since` sort by it; reconcile reads it."""
    good, broken = make_images(2)
    with open(broken.file.path, "wb") as handle:
        handle.write(images.truncated_jpeg())
    before = {row.pk: row.updated_at for row in ProductImage.objects.all()}

    tasks.embed_images([good.pk, broken.pk])

    after = {row.pk: (row.state, row.updated_at) for row in ProductImage.objects.all()}
    assert after[good.pk][0] == "indexed" and after[good.pk][1] > before[good.pk]
    assert after[broken.pk][0] == "failed" and after[broken.pk][1] > before[broken.pk]


class DatabaseOutage:
    """A real database failure, as a task sees an outage: on PostgreSQL its connection is
    terminated by the server (the next statement raises OperationalError); on SQLite, which
    has no server to lose, the table it needs is moved away (OperationalError too)."""

    def __init__(self):
        from django.db import connection

        self.connection = connection
        self.moved = False

    def strike(self) -> None:
        if self.connection.vendor == "postgresql":
            import psycopg

            self.connection.ensure_connection()
            pid = self.connection.connection.info.backend_pid
            with psycopg.connect(**self.connection.get_connection_params()) as other:
                other.execute("SELECT pg_terminate_backend(%s)", [pid])
        elif not self.moved:
            with self.connection.cursor() as cursor:
                cursor.execute("ALTER TABLE catalog_productimage RENAME TO catalog_productimage_away")
            self.moved = True

    def end(self) -> None:
        if self.moved:
            self.connection.close()  # (a no-op for the in-memory test database)
            with self.connection.cursor() as cursor:
                cursor.execute("ALTER TABLE catalog_productimage_away RENAME TO catalog_productimage")
            self.moved = False


def outage_for_attempts(monkeypatch, outage: DatabaseOutage, failing: int) -> list:
    """Each of the task's first ``failing`` attempts meets the outage (struck just before
    the attempt's first query); the later ones find the database back."""
    real_claim = indexing.images_waiting_claim  # the first thing each attempt asks the database
    attempts = []

    def claim(*, exclude):
        attempts.append(1)
        if len(attempts) <= failing:
            outage.strike()
        else:
            outage.end()
        return real_claim(exclude=exclude)

    monkeypatch.setattr(indexing, "images_waiting_claim", claim)
    monkeypatch.setattr(tasks, "retry_countdown", lambda retries: 0)
    return attempts


def test_a_database_error_is_retried_not_acknowledged_away(monkeypatch, caplog):
    (image,) = make_images(1)
    outage = DatabaseOutage()
    attempts = outage_for_attempts(monkeypatch, outage, failing=100)
    try:
        tasks.embed_images.apply(args=[[image.pk]])
    finally:
        outage.end()

    assert len(attempts) == tasks.MAX_RETRIES + 1
    retries = [r for r in caplog.records if "Database unavailable, retrying" in r.getMessage()]
    assert len(retries) == tasks.MAX_RETRIES
    assert any("gave up batch of 1 images after 8 retries" in r.getMessage() for r in caplog.records)
    image.refresh_from_db()
    assert image.state == "pending" and image.error == ""  # left for reconcile, not failed


def test_a_database_that_comes_back_is_used_on_retry(monkeypatch):
    (image,) = make_images(1)
    outage = DatabaseOutage()
    attempts = outage_for_attempts(monkeypatch, outage, failing=2)
    try:
        tasks.embed_images.apply(args=[[image.pk]])
    finally:
        outage.end()

    image.refresh_from_db()
    assert len(attempts) == 3
    assert image.state == "indexed"

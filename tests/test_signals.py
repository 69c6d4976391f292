"""The catalog tells the index through its own signals: after a commit, never after a
rollback, merged when held, and only a change the index holds starts a payload task."""

from __future__ import annotations

import pytest
from celery.signals import task_prerun
from django.db import transaction

from catalog import services, signals
from catalog.models import ProductImage
from embeddings.index import get_index
from embeddings.model import get_encoder
from tests import images

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tasks_run():
    """The names of the Celery tasks that ran (eagerly) during the test."""
    ran: list[str] = []

    def record(sender=None, **kwargs):
        ran.append(sender.name.rsplit(".", 1)[-1])

    task_prerun.connect(record)
    yield ran
    task_prerun.disconnect(record)


def product(external_id: str = "sku-1", **fields):
    return services.product_upsert(external_id=external_id, title="Mug", **fields).product


def test_a_new_image_is_embedded_when_its_transaction_commits(tasks_run):
    with transaction.atomic():
        image = services.image_create(product=product(), content=images.noise_jpeg(1)).image
        assert tasks_run == [], "nothing runs before the commit"
    image.refresh_from_db()
    assert tasks_run == ["embed_images"]
    assert image.state == "indexed"


def test_a_rolled_back_write_tells_the_index_nothing(sent_signals, tasks_run):
    with pytest.raises(RuntimeError), transaction.atomic():
        services.image_create(product=product(), content=images.noise_jpeg(1))
        raise RuntimeError("the request failed after the write")
    assert ProductImage.objects.count() == 0
    assert [name for name, _ in sent_signals] == ["images_added"]  # sent at once: receivers defer
    assert tasks_run == []


def test_only_a_change_of_an_indexed_field_refreshes_the_payload(tasks_run):
    item = product(category="kitchen")
    services.image_create(product=item, content=images.noise_jpeg(1))
    tasks_run.clear()

    services.product_update(product=item, url="https://shop.example/big-mug", currency="EUR")
    assert tasks_run == [], "the URL and currency are not in the points' payload"

    services.product_update(product=item, price="9.90")
    assert tasks_run == ["refresh_product_payload"]
    # The keyword side's words are: a new title refreshes them.
    services.product_update(product=item, title="Big mug", description="Stoneware")
    assert tasks_run == ["refresh_product_payload", "refresh_product_payload"]


def test_deleting_tells_the_index_which_images_went(sent_signals):
    item = product()
    first = services.image_create(product=item, content=images.noise_jpeg(1)).image
    second = services.image_create(product=item, content=images.noise_jpeg(2)).image
    sent_signals.clear()

    services.product_delete(product=item)

    assert sent_signals == [("images_removed", {"image_ids": [first.pk, second.pk]})]
    assert get_index().count(get_encoder().space) == 0


def test_held_signals_are_sent_merged_in_batches(sent_signals, settings):
    item = product()
    with signals.deferred() as held:
        ids = [services.image_create(product=item, content=images.noise_jpeg(n)).image.pk for n in range(5)]
        services.product_update(product=item, brand="Kito")
        services.product_update(product=item, category="kitchen")
        assert sent_signals == [], "held until flushed"
        sizes: list[int] = []
        held.flush(batch_size=2, progress=sizes.append)

    assert sent_signals == [
        ("products_changed", {"changes": {item.pk: ("brand", "category")}}),
        ("images_added", {"image_ids": ids[:2]}),
        ("images_added", {"image_ids": ids[2:4]}),
        ("images_added", {"image_ids": ids[4:]}),
    ]
    assert sizes == [2, 2, 1]
    assert set(ProductImage.objects.values_list("state", flat=True)) == {"indexed"}


def test_a_held_block_inside_a_transaction_sends_on_commit_and_drops_rolled_back_savepoints(sent_signals):
    item = product()
    with transaction.atomic(), signals.deferred():
        kept = services.image_create(product=item, content=images.noise_jpeg(1)).image
        with pytest.raises(RuntimeError), transaction.atomic():
            services.image_create(product=item, content=images.noise_jpeg(2))
            raise RuntimeError("this one is refused")
        assert sent_signals == []
    assert sent_signals == [("images_added", {"image_ids": [kept.pk]})]


def test_nested_held_blocks_send_once_from_the_outer_one(sent_signals):
    item = product()
    with signals.deferred():
        with signals.deferred():
            first = services.image_create(product=item, content=images.noise_jpeg(1)).image
        second = services.image_create(product=item, content=images.noise_jpeg(2)).image
        assert sent_signals == []
    assert sent_signals == [("images_added", {"image_ids": [first.pk, second.pk]})]


def test_flushing_inside_a_transaction_is_refused():
    with signals.deferred() as held, transaction.atomic(), pytest.raises(RuntimeError):
        held.flush()

"""Drift between the database and the index, found and repaired (command and admin page)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client

from catalog import services
from catalog.models import ProductImage
from embeddings.index import ImagePoint, get_index
from embeddings.model import get_encoder
from embeddings.reconcile import index_drift, reconcile
from tests import images

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def indexed():
    ids = []
    for number in range(4):
        product = services.product_upsert(external_id=f"sku-{number}", title=f"Thing {number}").product
        ids.append(services.image_create(product=product, content=images.noise_jpeg(number)).image.pk)
    assert set(ProductImage.objects.values_list("state", flat=True)) == {"indexed"}
    return ids


def make_drift(ids: list[int]) -> int:
    """One of each kind: a point deleted, an orphan point, an image indexed by another model."""
    space = get_encoder().space
    index = get_index()
    index.delete_images([ids[0]])
    orphan_id = max(ids) + 1000
    index.upsert(space, [ImagePoint(image_id=orphan_id, product_id=999, vector=np.ones(space.dimension), payload={})])
    ProductImage.objects.filter(pk=ids[1]).update(embedding_space="some-other-model|x|512")
    return orphan_id


def test_a_clean_index_has_no_drift(indexed):
    drift = index_drift()
    assert drift.is_clean and drift.points == 4 and drift.pending == 0


def test_each_kind_of_drift_is_found_and_repaired(indexed):
    orphan_id = make_drift(indexed)
    drift = index_drift()
    assert drift.missing == [indexed[0]]
    assert drift.orphans == [orphan_id]
    assert drift.other_space == [indexed[1]]
    report = reconcile(drift)
    assert (report.requeued, report.orphans_deleted) == (2, 1)
    after = index_drift()
    assert after.is_clean, after
    assert get_index().image_ids(get_encoder().space) == set(indexed)
    assert set(ProductImage.objects.values_list("embedding_space", flat=True)) == {get_encoder().space.id}


def test_the_command_reports_and_repairs_and_a_dry_run_changes_nothing(indexed):
    make_drift(indexed)
    out = io.StringIO()
    call_command("reconcile", "--dry-run", stdout=out)
    assert "missing 1, orphan points 1, indexed with another model 1" in out.getvalue()
    assert not index_drift().is_clean
    out = io.StringIO()
    call_command("reconcile", stdout=out)
    assert "Re-queued 2 images; deleted 1 orphan points." in out.getvalue()
    assert index_drift().is_clean


@pytest.fixture
def staff_client():
    user = User.objects.create_user("merch", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="change_product"))
    client = Client()
    client.force_login(user)
    return client


def test_the_index_health_page_shows_states_drift_and_failures(indexed, staff_client):
    make_drift(indexed)
    ProductImage.objects.filter(pk=indexed[3]).update(state="failed", error="The stored file is missing.")
    html = staff_client.get("/admin/index-health/").content.decode()
    assert '<td id="count-indexed">3</td>' in html and '<td id="count-failed">1</td>' in html
    assert '<td id="drift-missing">1</td>' in html and '<td id="drift-orphans">1</td>' in html
    assert '<td id="drift-other">1</td>' in html
    assert "The stored file is missing." in html
    assert "no broker: tasks run in the web process" in html
    assert 'href="/admin/index-health/"' in staff_client.get("/admin/").content.decode()


def test_reconcile_and_retry_from_the_page(indexed, staff_client):
    make_drift(indexed)
    ProductImage.objects.filter(pk=indexed[3]).update(state="failed", error="boom")
    response = staff_client.post("/admin/index-health/", {"action": "reconcile"}, follow=True)
    assert "Reconciled: 2 images re-queued, 1 orphan points deleted." in response.content.decode()
    assert index_drift().is_clean
    staff_client.post("/admin/index-health/", {"action": "retry_failed"})
    assert ProductImage.objects.get(pk=indexed[3]).state == "indexed"


def test_the_page_needs_staff_and_actions_need_the_permission(indexed):
    assert Client().get("/admin/index-health/").status_code == 302  # to the login page
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    client = Client()
    client.force_login(viewer)
    assert client.get("/admin/index-health/").status_code == 200
    assert client.post("/admin/index-health/", {"action": "rebuild"}).status_code == 403


def test_the_queue_depth_is_read_from_a_real_redis_broker(settings, tmp_path, db):
    """Debian's redis-server on a free port: two tasks waiting show as 2; the API's health
    says the broker is up, then, stopped, that it is not."""
    import socket
    import subprocess
    import time

    from embeddings.health import queue_depth
    from searchsite.celery import app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    saved = app.conf.broker_url
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.1)
        settings.CELERY_TASK_ALWAYS_EAGER = False
        app.conf.broker_url = url
        assert queue_depth() == (0, "")
        with app.connection_for_write() as connection:
            for _ in range(2):
                app.send_task("embeddings.tasks.embed_images", args=[[1]], queue="embeddings", connection=connection)
        assert queue_depth() == (2, "")
        health = Client().get("/api/v1/health").json()
        assert health["checks"]["broker"] == "ok" and health["status"] == "ok"
        server.terminate()
        server.wait(timeout=10)
        depth, note = queue_depth()
        assert depth is None and "the broker did not answer" in note
        response = Client().get("/api/v1/health")
        assert response.status_code == 200  # searches still answer: degraded, not down
        assert response.json()["checks"]["broker"] == "unavailable"
        assert response.json()["status"] == "degraded"
    finally:
        app.conf.broker_url = saved
        if server.poll() is None:
            server.terminate()


def test_reconcile_requeues_images_left_pending_too_long(indexed, settings):
    from datetime import timedelta

    from django.utils import timezone

    settings.VITRINE_EMBED_COALESCE_SECONDS = 0  # its task alone: what reconcile picked

    ProductImage.objects.filter(pk=indexed[0]).update(state="pending", queued_at=timezone.now() - timedelta(hours=1))
    ProductImage.objects.filter(pk=indexed[1]).update(state="pending", queued_at=timezone.now())  # just queued
    report = reconcile()
    assert report.requeued == 1
    assert ProductImage.objects.get(pk=indexed[0]).state == "indexed"
    assert ProductImage.objects.get(pk=indexed[1]).state == "pending"


def test_the_command_requeues_stale_pending_images_when_nothing_else_drifted(indexed, settings):
    """A database outage once left images pending with their tasks acknowledged: with no
    other drift, the command must still queue them again."""
    from datetime import timedelta

    from django.utils import timezone

    settings.VITRINE_EMBED_COALESCE_SECONDS = 0
    ProductImage.objects.filter(pk=indexed[2]).update(state="pending", queued_at=timezone.now() - timedelta(hours=1))
    get_index().delete_images([indexed[2]])  # re-uploaded: its new task was lost before it ran
    out = io.StringIO()

    call_command("reconcile", stdout=out)

    assert "(1 for too long)" in out.getvalue() and "Re-queued 1 images" in out.getvalue()
    assert ProductImage.objects.get(pk=indexed[2]).state == "indexed"


def test_retired_collections_are_dropped_only_when_asked(indexed, settings):
    from embeddings.index import collection_name
    from embeddings.indexing import images_embed
    from embeddings.models import IndexSpace
    from embeddings.search import SearchQuery, catalog_search
    from embeddings.spaces import images_missing_from, live_space_forget

    old = get_encoder().space
    catalog_search(SearchQuery(text="thing"))  # the demo model's space is live
    settings.VITRINE_CLIP_MODEL, settings.VITRINE_CLIP_PRETRAINED = "vitrine-tiny", ""
    new = get_encoder().space
    images_embed(image_ids=list(images_missing_from(new.id).values_list("pk", flat=True)))
    live_space_forget()
    assert IndexSpace.objects.get(embedding_space=old.id).state == "retired"
    assert get_index().count(old) == 4

    call_command("reconcile", stdout=io.StringIO())
    assert collection_name(old) in get_index().other_collections(new)  # kept for a rollback

    out = io.StringIO()
    call_command("reconcile", "--drop-retired", stdout=out)
    assert f"Dropped the collection {collection_name(old)}" in out.getvalue()
    assert get_index().other_collections(new) == {}
    assert not IndexSpace.objects.filter(embedding_space=old.id).exists()
    assert get_index().count(new) == 4


def test_the_scheduled_reconcile_requeues_images_whose_task_was_lost(indexed, settings):
    """What Celery beat runs every VITRINE_RECONCILE_MINUTES: no person needs to press a
    button after an outage."""
    from datetime import timedelta

    from django.utils import timezone

    from embeddings import tasks

    settings.VITRINE_EMBED_COALESCE_SECONDS = 0
    ProductImage.objects.filter(pk=indexed[0]).update(state="pending", queued_at=timezone.now() - timedelta(hours=1))
    # never sent (and no beat flushing the outbox): reconcile takes it too, once stale
    ProductImage.objects.filter(pk=indexed[1]).update(
        state="pending", queued_at=None, updated_at=timezone.now() - timedelta(hours=1)
    )
    get_index().delete_images([indexed[0]])

    tasks.reconcile_index.apply()
    assert ProductImage.objects.get(pk=indexed[1]).state == "indexed"

    assert ProductImage.objects.get(pk=indexed[0]).state == "indexed"
    assert get_index().vectors(get_encoder().space, [indexed[0]])


def test_an_upload_the_broker_could_not_take_waits_in_the_outbox_and_is_sent_when_it_is_back(
    settings, tmp_path, db, no_worker
):
    """The upload is answered and its row kept while Redis is down; the outbox sends its
    task once Redis answers again, and only once."""
    import socket
    import subprocess
    import time
    from datetime import timedelta

    import redis
    from django.utils import timezone

    from embeddings.outbox import broker_outage_forget, outbox_flush
    from searchsite.celery import app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    saved = app.conf.broker_url
    settings.CELERY_TASK_ALWAYS_EAGER = False
    broker_switch(app, f"redis://127.0.0.1:{port}/0")
    server = None
    try:
        product = services.product_upsert(external_id="sku-outbox", title="Outbox mug").product
        image = services.image_create(product=product, content=images.noise_jpeg(7)).image  # nothing listens
        image.refresh_from_db()
        assert (image.state, image.queued_at) == ("pending", None)
        assert outbox_flush() == 0  # too recent: its own commit may still be sending it

        ProductImage.objects.filter(pk=image.pk).update(updated_at=timezone.now() - timedelta(minutes=1))
        assert outbox_flush() == 0  # the broker is still away: nothing is marked as sent
        assert ProductImage.objects.get(pk=image.pk).queued_at is None

        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.1)
        assert outbox_flush() == 0  # it failed moments ago: not asked again so soon
        broker_outage_forget()  # BROKER_RETRY_SECONDS later
        assert outbox_flush() == 1
        assert client.llen("embeddings") == 1
        assert ProductImage.objects.get(pk=image.pk).queued_at is not None
        assert outbox_flush() == 0  # sent once
        assert client.llen("embeddings") == 1
    finally:
        broker_switch(app, saved)
        if server is not None:
            server.terminate()
            server.wait(timeout=10)


def test_a_frozen_broker_costs_an_upload_one_timeout_and_readiness_half_a_second(settings, db, no_worker):
    """A broker that takes connections and never answers (Redis stopped with SIGSTOP, a
    half-open connection): commands wait CELERY_BROKER_SOCKET_TIMEOUT, not forever. The
    upload is answered with its image in the outbox, the next upload does not wait on the
    broker again, and readiness says the broker is unavailable."""
    import socket
    import threading

    from embeddings.health import queue_depth
    from searchsite.celery import app

    frozen = socket.socket()
    frozen.bind(("127.0.0.1", 0))
    frozen.listen(16)
    taken: list[socket.socket] = []  # connections taken and never answered

    def take():
        while True:
            try:
                taken.append(frozen.accept()[0])
            except OSError:
                return

    threading.Thread(target=take, daemon=True).start()
    saved = app.conf.broker_url
    settings.CELERY_TASK_ALWAYS_EAGER = False
    broker_switch(app, f"redis://127.0.0.1:{frozen.getsockname()[1]}/0")
    try:
        product = services.product_upsert(external_id="sku-frozen", title="Frozen mug").product
        done: list = []

        def uploads():
            for seed in (8, 9):
                done.append(services.image_create(product=product, content=images.noise_jpeg(seed)).image)
            done.append(queue_depth())

        worker = threading.Thread(target=uploads, daemon=True)
        worker.start()
        worker.join(120)  # a frozen broker used to hold the first upload forever

        assert not worker.is_alive(), "an upload or readiness waited on a frozen broker"
        first, second, (depth, note) = done
        states = ProductImage.objects.filter(pk__in=[first.pk, second.pk]).values_list("state", "queued_at")
        assert list(states) == [("pending", None), ("pending", None)]  # both in the outbox
        assert depth is None and "Timeout" in note
        # One connection for the first upload's one try, one for readiness: a timeout is
        # not tried again, and the second upload did not wait on the broker.
        assert len(taken) == 2
    finally:
        broker_switch(app, saved)
        frozen.close()
        for connection in taken:
            connection.close()


def test_with_the_broker_down_a_product_change_and_a_deleted_photo_still_reach_the_index(settings, indexed):
    """Payload refreshes and unindexing are done by the web process itself when no broker
    takes them: no point keeps an old category, no deleted photo stays findable."""
    import socket

    from embeddings.index import IndexFilters
    from searchsite.celery import app

    image = ProductImage.objects.filter(state="indexed").select_related("product").first()
    kept = ProductImage.objects.filter(state="indexed").exclude(product=image.product).first()
    space = get_encoder().space
    vector = get_index().vectors(space, [image.pk])[image.pk]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there
    saved = app.conf.broker_url
    settings.CELERY_TASK_ALWAYS_EAGER = False
    broker_switch(app, f"redis://127.0.0.1:{port}/0")
    try:
        services.product_update(product=image.product, category="moon-garden")
        in_garden = get_index().query(
            space, vector, filters=IndexFilters(categories=("moon-garden",)), limit=5, offset=0
        )
        assert {hit.image_id for hit in in_garden} == set(
            image.product.images.filter(state="indexed").values_list("pk", flat=True)
        )

        services.image_delete(image=kept)
        assert kept.pk not in get_index().image_ids(space)
    finally:
        broker_switch(app, saved)


def broker_switch(app, url: str) -> None:
    """Point the Celery app at another broker, dropping the connection and producer pools
    made for the previous one (what Celery itself does in a forked child)."""
    app.conf.broker_url = url
    app._pool = None
    app.amqp._producer_pool = None

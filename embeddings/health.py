"""The index health page in the admin: counts by state, drift, the model and collection in
use, the queue, the latest failures; actions to reconcile, retry failures and rebuild."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from catalog import selectors, services
from catalog.models import ProductImage
from embeddings.index import IndexUnavailable, collection_name, get_index
from embeddings.model import ModelUnavailable, get_encoder
from embeddings.reconcile import index_drift, reconcile
from embeddings.spaces import space_build_progress, space_build_running, space_build_start

logger = logging.getLogger(__name__)
QUEUE = "embeddings"
LATEST_FAILURES = 20


# The longest a readiness check waits for the broker to take a connection.
BROKER_CHECK_SECONDS = 0.5


def queue_depth() -> tuple[int | None, str]:
    """Tasks waiting in the embeddings queue, or None and why it cannot be said."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return None, "no broker: tasks run in the web process"
    from searchsite.celery import app

    try:
        # One try, no retry: the readiness probe asks this, and a probe's own timeout is
        # often 1 s (Kubernetes' default). A retry after kombu's 2-s pause made a broker that
        # is down cost readiness 2 s, and a load balancer would then take a working
        # (degraded) web process out of service.
        quick = {"socket_timeout": BROKER_CHECK_SECONDS, "socket_connect_timeout": BROKER_CHECK_SECONDS}
        with app.connection_for_read(connect_timeout=BROKER_CHECK_SECONDS, transport_options=quick) as connection:
            connection.ensure_connection(max_retries=0, timeout=BROKER_CHECK_SECONDS)
            channel = connection.default_channel
            if connection.transport.driver_type == "redis":
                return int(channel.client.llen(QUEUE)), ""  # the queue is a list; none yet means 0
            try:
                return int(channel.queue_declare(QUEUE, passive=True).message_count), ""
            except connection.channel_errors:
                return 0, ""  # the queue does not exist yet: nothing was ever queued
    except Exception as exc:  # noqa: BLE001 - any broker error: say so on the page
        return None, f"the broker did not answer ({exc.__class__.__name__}: {exc})"


def index_health(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _act(request)
    context = {
        **admin.site.each_context(request),
        "title": "Index health",
        "counts": selectors.image_state_counts(),
        "failures": ProductImage.objects.filter(state=ProductImage.State.FAILED)
        .select_related("product")
        .order_by("-updated_at")[:LATEST_FAILURES],
        "drift": None,
        "unavailable": None,
        "can_act": request.user.has_perm("catalog.change_product"),
    }
    context["queue_depth"], context["queue_note"] = queue_depth()
    try:
        context["build"] = space_build_progress()
        context["build_running"] = space_build_running()
        space = get_encoder().space
        index = get_index()
        context.update(
            space=space,
            collection=collection_name(space),
            alias=index.alias,
            alias_target=index.alias_target(),
            location=index.location,
            keywords=index.has_keywords(space),
            drift=index_drift(space),
        )
    except (IndexUnavailable, ModelUnavailable) as exc:
        context["unavailable"] = str(exc)
    return render(request, "admin/index_health.html", context)


def keywords_rebuild() -> int:
    """Make the live space's collection again, with keyword vectors (a collection's vector
    layout cannot change in place), and queue every image for it. Returns how many."""
    space = get_encoder().space
    index = get_index()
    index.drop(collection_name(space))
    index.ensure(space)
    image_ids = list(ProductImage.objects.values_list("pk", flat=True))
    ProductImage.objects.filter(embedding_space=space.id).update(embedding_space="")
    services.images_reembed(image_ids=image_ids)
    return len(image_ids)


def _act(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("catalog.change_product"):
        raise PermissionDenied
    action = request.POST.get("action")
    try:
        if action == "build":
            queued = space_build_start()
            messages.success(
                request,
                f"Re-embedding {queued} images with the configured model; searches keep using the live one "
                "until it is done."
                if queued
                else "Nothing to re-embed (or a re-embedding is already running).",
            )
        elif action == "reconcile":
            report = reconcile()
            messages.success(
                request,
                f"Reconciled: {report.requeued} images re-queued, {report.orphans_deleted} orphan points deleted.",
            )
        elif action == "rebuild_keywords":
            count = keywords_rebuild()
            messages.success(request, f"Made the collection again with a keyword index; queued {count} images.")
        elif action in ("retry_failed", "rebuild"):
            images = ProductImage.objects.all()
            if action == "retry_failed":
                images = images.filter(state=ProductImage.State.FAILED)
            image_ids = list(images.values_list("pk", flat=True))
            services.images_reembed(image_ids=image_ids)
            what = "failed images" if action == "retry_failed" else "images (the whole index)"
            messages.success(request, f"Queued {len(image_ids)} {what} for embedding.")
        else:
            messages.error(request, "Unknown action.")
    except (IndexUnavailable, ModelUnavailable) as exc:
        messages.error(request, f"The index is unavailable: {exc}")
    return HttpResponseRedirect(reverse("index-health"))

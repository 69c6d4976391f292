import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.locale import LocaleMiddleware
from django.utils import translation

logger = logging.getLogger(__name__)

# Room for the multipart envelope and the other form fields around one image.
UPLOAD_ENVELOPE_BYTES = 1024 * 1024


class RequestSizeLimitMiddleware:
    """Refuse a body larger than one accepted image before Django spools it to disk.

    Placed after the authentication middleware: staff get the larger limits of the bulk
    upload and feed import pages.

    Django's own DATA_UPLOAD_MAX_MEMORY_SIZE does not count uploaded files.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit, setting, what = _limit_for(request)
        if length > limit + UPLOAD_ENVELOPE_BYTES:
            message = (
                f"The request is {length / 1048576:.1f} MB; {what} may be at most {limit / 1048576:.1f} MB ({setting})."
            )
            if request.path.startswith("/api/"):
                return JsonResponse({"error": {"code": "request_too_large", "message": message}}, status=413)
            if request.path.startswith("/admin/"):  # staff: the setting to change is useful
                return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
            # A shopper gets a page in their language with the limit in plain words; the
            # operator's details go to the log.
            from django.shortcuts import render

            logger.info("413 for %s: %s", request.path, message)
            context = {"limit_mb": f"{limit / 1048576:.0f}"}
            return render(request, "413.html", context, status=413)
        return self.get_response(request)


def _limit_for(request: HttpRequest) -> tuple[int, str, str]:
    """The admin's bulk upload takes zips and its feed import takes feeds, from signed-in
    staff only (so nobody else can make the server spool a large body); the rest, an image."""
    path = request.path
    user = getattr(request, "user", None)
    is_staff = bool(user is not None and user.is_active and user.is_staff)
    if is_staff and path.startswith("/admin/bulk-upload/"):
        return settings.VITRINE_MAX_ZIP_BYTES, "VITRINE_MAX_ZIP_BYTES", "uploads"
    if is_staff and path.startswith("/admin/catalog/feedimport/"):
        return settings.VITRINE_MAX_FEED_BYTES, "VITRINE_MAX_FEED_BYTES", "feeds"
    if path == "/api/v1/search":  # a photo may come base64-encoded in JSON: 4 characters per 3 bytes
        return settings.VITRINE_MAX_IMAGE_BYTES * 4 // 3, "VITRINE_MAX_IMAGE_BYTES", "photos (base64)"
    if path == "/api/v1/bulk/products":
        per_product = settings.API_BULK_BYTES_PER_PRODUCT
        setting = f"{per_product // 1024} KB × VITRINE_API_BULK_MAX"
        return settings.VITRINE_API_BULK_MAX * per_product, setting, "bulk requests"
    return settings.VITRINE_MAX_IMAGE_BYTES, "VITRINE_MAX_IMAGE_BYTES", "requests"


# What a dependency outage raises: the database's errors, and Vitrine's own "the index or
# the model cannot be used right now".
def _is_outage(exc: BaseException | None) -> bool:
    from django.db import InterfaceError, OperationalError

    from searchsite.errors import ServiceUnavailable

    return isinstance(exc, (OperationalError, InterfaceError, ServiceUnavailable))


def outage_response(request: HttpRequest, exc: BaseException) -> HttpResponse:
    """503 with Retry-After: the API's one error shape, or a plain page that needs nothing
    (no database, no session, no template context) to render."""
    from django.db import DatabaseError
    from django.template.loader import render_to_string

    from searchsite.errors import RETRY_AFTER_UNAVAILABLE

    what = "database" if isinstance(exc, DatabaseError) else "index"
    _outage_log(request, exc)
    if request.path.startswith("/api/"):
        message = (
            "The database is unavailable right now; nothing was changed. Try again shortly."
            if what == "database"
            else f"{exc} Try again shortly."
        )
        response = JsonResponse({"error": {"code": f"{what}_unavailable", "message": message}}, status=503)
    else:
        response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = RETRY_AFTER_UNAVAILABLE
    return response


_last_logged: dict[str, float] = {}


def _outage_log(request: HttpRequest, exc: BaseException) -> None:
    """Each kind of outage once every ten seconds at most (an outage is many requests)."""
    import logging
    import time

    kind = type(exc).__name__
    now = time.monotonic()
    if now - _last_logged.get(kind, 0.0) > 10:
        _last_logged[kind] = now
        logging.getLogger("searchsite.outage").warning("503 for %s: %s: %s", request.path, kind, exc)


class OutageMiddleware:
    """A dependency that fails while a view runs answers 503 with Retry-After, never a
    500 (``handler500`` does the same for failures outside views, e.g. in a middleware)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if _is_outage(exception):
            return outage_response(request, exception)
        return None


def outage_in_flight() -> BaseException | None:
    """The exception being handled, when it is an outage (``handler500`` runs inside the
    ``except`` that caught it)."""
    import sys

    exc = sys.exc_info()[1]
    return exc if _is_outage(exc) else None


class ShopperLocaleMiddleware(LocaleMiddleware):
    """Django's LocaleMiddleware for the pages (cookie set by the language switch, else
    Accept-Language); the API always answers in English: its messages sit beside
    machine-readable codes, and integrations log them."""

    def process_request(self, request: HttpRequest) -> None:
        if request.path_info.startswith("/api/"):
            translation.activate(settings.LANGUAGE_CODE)
            request.LANGUAGE_CODE = settings.LANGUAGE_CODE
            return
        super().process_request(request)

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if request.path_info.startswith("/api/"):
            return response
        return super().process_response(request, response)


class ShopperNotFoundMiddleware:
    """With DEBUG on (the embedded demo) Django answers an unknown address with its
    technical 404 page, which lists the site's URL patterns and settings: shoppers get the
    site's own 404 page instead (the admin and the API keep theirs)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            settings.DEBUG
            and response.status_code == 404
            and not getattr(response, "shopper_page", False)
            and response.get("Content-Type", "").startswith("text/html")
            and not request.path_info.startswith(("/api/", "/admin/"))
        ):
            from django.shortcuts import render

            response = render(request, "404.html", status=404)
        return response

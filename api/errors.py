"""One error shape for the whole API: ``{"error": {"code", "message", "fields"?}}``.

400 the request is malformed · 401 no valid key · 403 the key lacks the scope · 404 not
found · 413 too large · 415 not an image Vitrine reads (or a body type it does not take) ·
422 well-formed but impossible · 429 too many requests (Retry-After) · 502 the image API
answered with something unusable · 503 the index, the model or the image API is unavailable
(Retry-After).
"""

from __future__ import annotations

import logging

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import status
from rest_framework.exceptions import APIException, Throttled, ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from catalog.intake import ImageRejected
from catalog.models import Product, ProductImage
from embeddings.index import IndexUnavailable
from embeddings.model import ModelUnavailable
from searchsite.errors import RETRY_AFTER_UNAVAILABLE
from searchsite.fetch import FetchRefused

logger = logging.getLogger(__name__)

# Intake codes → status: too large is 413, not an image (or a format we refuse) is 415,
# the rest (empty, damaged, too many pixels) is bad input.
IMAGE_STATUS = {"file_too_large": 413, "unsupported_format": 415, "not_an_image": 415}
# Fetcher codes → status: a URL that is not a URL is bad input; one that can be read but
# may not or could not be fetched is an impossible request.
FETCH_STATUS = {"bad_url": 400, "bad_scheme": 400, "too_large": 413}


class ApiError(APIException):
    """Raise from a view: ``ApiError(422, "unknown_product", "No product 'x'.")``."""

    def __init__(
        self, http_status: int, code: str, message: str, fields: dict | None = None, *, retry_after: int | None = None
    ):
        super().__init__(message, code)
        self.status_code = http_status
        self.error_code = code
        self.fields = fields
        self.retry_after = retry_after  # seconds, sent as Retry-After (429, 503)


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    body: dict = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


def error_response(http_status: int, code: str, message: str, fields: dict | None = None) -> Response:
    return Response(error_body(code, message, fields), status=http_status)


def image_error(exc: ImageRejected) -> ApiError:
    return ApiError(IMAGE_STATUS.get(exc.code, 400), exc.code, exc.message)


def fetch_error(exc: FetchRefused) -> ApiError:
    return ApiError(FETCH_STATUS.get(exc.code, 422), exc.code, exc.message)


def exception_handler(exc, context):
    if isinstance(exc, (IndexUnavailable, ModelUnavailable)):
        code = "index_unavailable" if isinstance(exc, IndexUnavailable) else "model_unavailable"
        response = error_response(status.HTTP_503_SERVICE_UNAVAILABLE, code, str(exc))
        response["Retry-After"] = RETRY_AFTER_UNAVAILABLE
        return response
    if isinstance(exc, RequestDataTooBig):
        return error_response(413, "request_too_large", "The request body is larger than this endpoint accepts.")
    if isinstance(exc, SuspiciousOperation):  # e.g. more form fields than Django takes
        return error_response(400, "bad_request", str(exc) or "The request is malformed.")
    if isinstance(exc, ImageRejected):
        exc = image_error(exc)
    elif isinstance(exc, FetchRefused):
        exc = fetch_error(exc)
    if isinstance(exc, (Http404, Product.DoesNotExist, ProductImage.DoesNotExist)):
        return error_response(
            status.HTTP_404_NOT_FOUND, "not_found", str(exc) if isinstance(exc, Http404) and str(exc) else "Not found."
        )
    if isinstance(exc, ApiError):
        response = error_response(exc.status_code, exc.error_code, str(exc.detail), exc.fields)
        if exc.retry_after:
            response["Retry-After"] = str(exc.retry_after)
        return response
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, APIException):
        return response
    if isinstance(exc, ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = error_body("invalid", _validation_message(fields), _plain(fields))
    elif isinstance(exc, Throttled):
        wait = int(exc.wait or 1)
        response.data = error_body("throttled", f"Too many requests for this API key; try again in {wait} s.")
    else:
        codes = exc.get_codes()
        response.data = error_body(codes if isinstance(codes, str) else "error", str(exc.detail))
    return response


def _plain(detail):
    """ErrorDetail trees → plain lists and dicts of strings."""
    if isinstance(detail, dict):
        return {str(key): _plain(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_plain(item) for item in detail]
    return str(detail)


def _validation_message(fields: dict) -> str:
    parts = []
    for name, errors in fields.items():
        first = errors
        while isinstance(first, (list, dict)) and first:
            first = first[0] if isinstance(first, list) else next(iter(first.values()))
        parts.append(f"{name}: {first}")
    return "The request is not valid: " + "; ".join(parts[:5]) + ("; …" if len(parts) > 5 else "")


@csrf_exempt  # any method: a JSON 404, never the HTML CSRF page
def not_found_json(request, exception=None):
    return JsonResponse(error_body("not_found", f"There is no API endpoint {request.path}."), status=404)


def server_error_json(request):
    return JsonResponse(error_body("server_error", "Something went wrong on our side; it was logged."), status=500)

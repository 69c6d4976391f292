"""The integration API, v1 (minimal: search, product upsert, image upload and state).

Every error is ``{"error": {"code", "message", "fields"?}}`` with the right status:
400 bad input, 401/403 access, 404 unknown ids, 413 too large, 503 store or model down.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from catalog import selectors, services
from catalog.api_auth import CanWrite
from catalog.forms import SearchForm
from catalog.intake import ImageRejected
from catalog.models import Product, ProductImage
from embeddings import sync
from embeddings.index import IndexUnavailable
from embeddings.model import ModelUnavailable
from embeddings.search import SearchError, product_search

DEFAULT_API_LIMIT = 20


def error_response(code: str, message: str, http_status: int, fields: dict | None = None) -> Response:
    body: dict = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return Response({"error": body}, status=http_status)


def exception_handler(exc, context):
    if isinstance(exc, (IndexUnavailable, ModelUnavailable)):
        code = "index_unavailable" if isinstance(exc, IndexUnavailable) else "model_unavailable"
        response = error_response(code, str(exc), status.HTTP_503_SERVICE_UNAVAILABLE)
        response["Retry-After"] = "30"
        return response
    if isinstance(exc, (Http404, Product.DoesNotExist, ProductImage.DoesNotExist)):
        return error_response("not_found", "Not found.", status.HTTP_404_NOT_FOUND)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, APIException):
        detail = exc.detail
        if isinstance(detail, dict):
            response.data = {"error": {"code": "invalid", "message": "The request is not valid.", "fields": detail}}
        else:
            response.data = {
                "error": {
                    "code": exc.get_codes() if isinstance(exc.get_codes(), str) else "error",
                    "message": str(detail),
                }
            }
    return response


def product_data(product: Product) -> dict:
    return {
        "id": product.pk,
        "external_id": product.external_id,
        "title": product.title,
        "description": product.description,
        "brand": product.brand,
        "category": product.category,
        "price": str(product.price) if product.price is not None else None,
        "currency": product.currency,
        "url": product.url,
        "attributes": product.attributes,
        "is_active": product.is_active,
    }


def image_data(request: Request, image: ProductImage) -> dict:
    return {
        "id": image.pk,
        "product_id": image.product_id,
        "url": request.build_absolute_uri(image.file.url),
        "source_url": image.source_url,
        "sha256": image.sha256,
        "width": image.width,
        "height": image.height,
        "state": image.state,
        "error": image.error,
        "embedding_space": image.embedding_space,
    }


class SearchView(APIView):
    """GET with query parameters, or POST (JSON, or multipart with an ``image`` file)."""

    def get(self, request: Request) -> Response:
        return self._search(request, request.query_params, None)

    def post(self, request: Request) -> Response:
        data = request.data
        if hasattr(data, "getlist"):
            return self._search(request, data, request.FILES)
        if not isinstance(data, dict):
            return error_response("invalid", "The body must be a JSON object.", status.HTTP_400_BAD_REQUEST)
        return self._search(request, _as_form_data(data), None)

    def _search(self, request: Request, params, files) -> Response:
        form = SearchForm(params, files)
        if not form.is_valid():
            return _form_error(form)
        if not form.has_query:
            return error_response(
                "missing_query", "Give q, image, product_id or image_id.", status.HTTP_400_BAD_REQUEST
            )
        try:
            result = product_search(**form.search_kwargs(default_limit=DEFAULT_API_LIMIT))
        except SearchError as exc:
            http_status = status.HTTP_404_NOT_FOUND if exc.code == "not_found" else status.HTTP_400_BAD_REQUEST
            return error_response(exc.code, exc.message, http_status)
        return Response(
            {
                "results": [
                    {
                        "score": round(hit.score, 6),
                        "product": product_data(hit.product),
                        "image": image_data(request, hit.image),
                    }
                    for hit in result.hits
                ],
                "limit": result.limit,
                "offset": result.offset,
                "embedding_space": result.embedding_space,
                "took_ms": round(result.took_ms, 1),
            }
        )


def _as_form_data(data: dict):
    from django.http import QueryDict

    query = QueryDict(mutable=True)
    for key, value in data.items():
        if isinstance(value, list):
            query.setlist(key, [str(v) for v in value])
        elif isinstance(value, bool):
            query[key] = "on" if value else ""
        elif value is not None:
            query[key] = str(value)
    return query


def _form_error(form) -> Response:
    errors = form.errors.get_json_data()
    image_errors = errors.get("image") or []
    if image_errors:
        code = image_errors[0]["code"]
        http_status = (
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE if code == "file_too_large" else status.HTTP_400_BAD_REQUEST
        )
        return error_response(code, image_errors[0]["message"], http_status)
    fields = {name: [e["message"] for e in errs] for name, errs in errors.items()}
    message = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in fields.items())
    return error_response("invalid", message, status.HTTP_400_BAD_REQUEST, fields)


class ProductSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=500)
    description = serializers.CharField(required=False, allow_blank=True)
    brand = serializers.CharField(required=False, allow_blank=True, max_length=200)
    category = serializers.CharField(required=False, allow_blank=True, max_length=200)
    price = serializers.DecimalField(required=False, allow_null=True, max_digits=12, decimal_places=2, min_value=0)
    currency = serializers.RegexField(r"^[A-Za-z]{3}$", required=False, allow_blank=True)
    url = serializers.URLField(required=False, allow_blank=True, max_length=2000)
    attributes = serializers.DictField(required=False)
    is_active = serializers.BooleanField(required=False)


class ProductView(APIView):
    permission_classes = [CanWrite]

    def get_permissions(self):
        return [] if self.request.method == "GET" else super().get_permissions()

    def get(self, request: Request, external_id: str) -> Response:
        product = Product.objects.get(external_id=external_id)
        images = [image_data(request, image) for image in product.images.all()]
        return Response({**product_data(product), "images": images})

    def put(self, request: Request, external_id: str) -> Response:
        serializer = ProductSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            with transaction.atomic():
                result = services.product_upsert(external_id=external_id, **serializer.validated_data)
                sync.product_changed(result)
        except ValidationError as exc:
            return error_response("invalid", "The product is not valid.", status.HTTP_400_BAD_REQUEST, exc.message_dict)
        return Response(
            product_data(result.product), status=status.HTTP_201_CREATED if result.is_created else status.HTTP_200_OK
        )

    def delete(self, request: Request, external_id: str) -> Response:
        product = Product.objects.get(external_id=external_id)
        with transaction.atomic():
            image_ids = services.product_delete(product=product)
            sync.images_removed(image_ids)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProductImagesView(APIView):
    """POST multipart with a ``file`` field; the image is queued for indexing."""

    permission_classes = [CanWrite]

    def post(self, request: Request, external_id: str) -> Response:
        product = selectors.product_get_by_external_id(external_id)
        if product is None:
            return error_response(
                "not_found",
                f"There is no product {external_id!r}; create it with PUT first.",
                status.HTTP_404_NOT_FOUND,
            )
        upload = request.FILES.get("file")
        if upload is None:
            return error_response(
                "missing_file", "Send the image as a multipart field named 'file'.", status.HTTP_400_BAD_REQUEST
            )
        if upload.size > settings.VITRINE_MAX_IMAGE_BYTES:
            # Refuse before reading the spooled file into memory.
            return error_response(
                "file_too_large",
                f"The file is {upload.size / 1048576:.1f} MB; the limit is "
                f"{settings.VITRINE_MAX_IMAGE_BYTES / 1048576:.1f} MB (VITRINE_MAX_IMAGE_BYTES).",
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        try:
            with transaction.atomic():
                result = services.image_create(product=product, content=upload.read())
                if result.needs_indexing:
                    sync.images_enqueue([result.image.pk])
        except ImageRejected as exc:
            return error_response(exc.code, exc.message, status.HTTP_400_BAD_REQUEST)
        result.image.refresh_from_db()
        return Response(
            image_data(request, result.image),
            status=status.HTTP_201_CREATED if result.is_created else status.HTTP_200_OK,
        )


class ImageView(APIView):
    permission_classes = [CanWrite]

    def get_permissions(self):
        return [] if self.request.method == "GET" else super().get_permissions()

    def get(self, request: Request, image_id: int) -> Response:
        return Response(image_data(request, ProductImage.objects.get(pk=image_id)))

    def delete(self, request: Request, image_id: int) -> Response:
        image = ProductImage.objects.get(pk=image_id)
        with transaction.atomic():
            removed = services.image_delete(image=image)
            sync.images_removed([removed])
        return Response(status=status.HTTP_204_NO_CONTENT)


class HealthView(APIView):
    def get(self, request: Request) -> Response:
        return Response({"status": "ok", "images": selectors.image_state_counts()})

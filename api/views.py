"""The integration API's catalog endpoints (v1): products, images, health. Views validate
and shape; services write. Search is in ``search_views``.

Products are addressed by the shop's ``external_id``; images by Vitrine's id.
"""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError
from django.http import QueryDict
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api import serializers as s
from api.errors import ApiError
from api.parsers import StrictJSONParser
from api.schema import errors, examples
from catalog import selectors, services
from catalog.models import Product, ProductImage
from catalog.validators import external_id_problem
from embeddings import warmup
from embeddings.health import queue_depth
from embeddings.index import IndexUnavailable, get_index
from searchsite.caching import cache_call
from searchsite.errors import RETRY_AFTER_UNAVAILABLE
from searchsite.fetch import url_fetch

MAX_STATUS_IDS = 1000
EXTERNAL_ID_PARAMETER = OpenApiParameter(
    "external_id", str, OpenApiParameter.PATH, description="The shop's id for the product"
)

logger = logging.getLogger(__name__)


def _external_id_check(external_id: str) -> None:
    problem = external_id_problem(external_id)
    if problem:
        raise ApiError(400, "bad_external_id", problem)


def product_get(external_id: str) -> Product:
    _external_id_check(external_id)
    product = selectors.product_get_by_external_id(external_id)
    if product is None:
        raise ApiError(404, "not_found", f"There is no product with external_id {external_id!r}.")
    return product


def _image_get(image_id: int) -> ProductImage:
    image = ProductImage.objects.select_related("product").filter(pk=image_id).first()
    if image is None:
        raise ApiError(404, "not_found", f"There is no image {image_id}.")
    return image


def _product_detail(request: Request, product: Product) -> dict:
    images = list(product.images.select_related("product"))
    return {
        **s.ProductSerializer(product).data,
        "images": s.ImageSerializer(images, many=True, context={"request": request}).data,
        "image_counts": selectors.image_counts(images),
    }


def _validation_error(exc: DjangoValidationError) -> ApiError:
    return ApiError(400, "invalid", "The product is not valid.", services.validation_fields(exc))


# --- Products ----------------------------------------------------------------------------


class ProductListView(APIView):
    @extend_schema(
        operation_id="products_list",
        summary="List products",
        description="Most recently changed first. Filter by category, brand, active state, or change time.",
        parameters=[s.ProductListQuerySerializer],
        responses={200: s.ProductListSerializer, **errors(400, 401, 403, 429)},
        tags=["products"],
    )
    def get(self, request: Request) -> Response:
        query = s.ProductListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        products = selectors.product_list(
            category=params.get("category"),
            brand=params.get("brand"),
            is_active=params.get("is_active"),
            updated_since=params.get("updated_since"),
        )
        limit, offset = params["limit"], params["offset"]
        return Response(
            {
                "count": products.count(),
                "limit": limit,
                "offset": offset,
                "results": s.ProductSerializer(products[offset : offset + limit], many=True).data,
            }
        )


class ProductView(APIView):
    parser_classes = [StrictJSONParser]

    @extend_schema(
        operation_id="products_retrieve",
        summary="Get a product",
        description="The product with its images and their indexing state.",
        parameters=[EXTERNAL_ID_PARAMETER],
        responses={200: s.ProductDetailSerializer, **errors(400, 401, 403, 404, 429)},
        tags=["products"],
    )
    def get(self, request: Request, external_id: str) -> Response:
        return Response(_product_detail(request, product_get(external_id)))

    @extend_schema(
        operation_id="products_put",
        summary="Create or replace a product",
        description="Creates the product, or replaces all its fields (fields left out take their defaults). "
        "Sending the same product again changes nothing. 201 when created, 200 when it existed.",
        parameters=[EXTERNAL_ID_PARAMETER],
        request=s.ProductWriteSerializer,
        responses={200: s.ProductSerializer, 201: s.ProductSerializer, **errors(400, 401, 403, 413, 415, 429)},
        examples=[examples.PRODUCT_PUT],
        tags=["products"],
    )
    def put(self, request: Request, external_id: str) -> Response:
        _external_id_check(external_id)
        serializer = s.ProductWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            result = services.product_upsert(external_id=external_id, **serializer.validated_data)
        except DjangoValidationError as exc:
            raise _validation_error(exc) from None
        return Response(
            s.ProductSerializer(result.product).data,
            status=status.HTTP_201_CREATED if result.is_created else status.HTTP_200_OK,
        )

    @extend_schema(
        operation_id="products_patch",
        summary="Change some fields of a product",
        description="Only the fields sent change. `attributes` is merged key by key; a key set to null is removed.",
        parameters=[EXTERNAL_ID_PARAMETER],
        request=s.ProductPatchSerializer,
        responses={200: s.ProductSerializer, **errors(400, 401, 403, 404, 413, 415, 429)},
        examples=[examples.PRODUCT_PATCH],
        tags=["products"],
    )
    def patch(self, request: Request, external_id: str) -> Response:
        product = product_get(external_id)
        serializer = s.ProductPatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            result = services.product_update(product=product, attributes_merge=True, **serializer.validated_data)
        except DjangoValidationError as exc:
            raise _validation_error(exc) from None
        return Response(s.ProductSerializer(result.product).data)

    @extend_schema(
        operation_id="products_delete",
        summary="Delete a product",
        description="Deletes the product and its images; they leave the index too.",
        parameters=[EXTERNAL_ID_PARAMETER],
        responses={204: None, **errors(400, 401, 403, 404, 429)},
        tags=["products"],
    )
    def delete(self, request: Request, external_id: str) -> Response:
        services.product_delete(product=product_get(external_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProductBulkView(APIView):
    parser_classes = [StrictJSONParser]

    @extend_schema(
        operation_id="products_bulk_upsert",
        summary="Create or replace many products",
        description="Each product is created, replaced (like PUT), or left unchanged when nothing differs; "
        "a product with an error is not written at all, and the others are. Results come in request order. "
        "Idempotent: sending the same body again gives `unchanged` for every product. "
        "At most VITRINE_API_BULK_MAX (default 500) products per request (413 beyond).",
        request=s.BulkUpsertSerializer,
        responses={200: s.BulkUpsertResultSerializer, **errors(400, 401, 403, 413, 415, 429)},
        examples=[examples.BULK_REQUEST, examples.BULK_RESPONSE],
        tags=["products"],
    )
    def post(self, request: Request) -> Response:
        serializer = s.BulkUpsertSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        items = serializer.validated_data["products"]
        limit = settings.VITRINE_API_BULK_MAX
        if len(items) > limit:
            raise ApiError(
                413,
                "too_many_products",
                f"{len(items)} products in one request; the limit is {limit} (VITRINE_API_BULK_MAX).",
            )
        # Each item is checked on its own (one malformed item does not refuse the others);
        # the valid ones are written together by the service.
        results: list[dict | None] = [None] * len(items)
        valid: list[tuple[int, dict]] = []
        for index, raw in enumerate(items):
            error, values = _bulk_item(index, raw)
            if error is not None:
                results[index] = error
            else:
                valid.append((index, values))
        written = services.products_bulk_upsert(products=[values for _, values in valid])
        for (index, _), outcome in zip(valid, written, strict=True):
            if isinstance(outcome, services.ProductWriteError):
                results[index] = _bulk_error(index, outcome.external_id, outcome.code, outcome.message, outcome.fields)
            else:
                results[index] = {
                    "index": index,
                    "external_id": outcome.product.external_id,
                    "status": outcome.status,
                    "id": outcome.product.pk,
                }
        summary = {name: 0 for name in ("created", "updated", "unchanged", "error")}
        for result in results:
            summary[result["status"]] += 1
        return Response({"results": results, "summary": summary})


def _bulk_item(index: int, raw) -> tuple[dict | None, dict]:
    """(an error result, or None and the item's validated values)."""
    if raw is None:
        return _bulk_error(index, None, "invalid", "The product is null, not an object."), {}
    external_id = raw.get("external_id") if isinstance(raw, dict) else None
    external_id = external_id if isinstance(external_id, str) else None
    item = s.BulkProductSerializer(data=raw)
    if not item.is_valid():
        fields = {
            name: [str(e) for e in errs] if isinstance(errs, list) else str(errs) for name, errs in item.errors.items()
        }
        return _bulk_error(index, external_id, "invalid", "The product is not valid.", fields), {}
    return None, dict(item.validated_data)


def _bulk_error(index: int, external_id, code: str, message: str, fields: dict | None = None) -> dict:
    error = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"index": index, "external_id": external_id, "status": "error", "error": error}


# --- Images ------------------------------------------------------------------------------


class ProductImagesView(APIView):
    @extend_schema(
        operation_id="product_images_list",
        summary="List a product's images",
        description="With each image's indexing state, and the reason when it failed.",
        parameters=[EXTERNAL_ID_PARAMETER],
        responses={200: s.ImageSerializer(many=True), **errors(400, 401, 403, 404, 429)},
        tags=["images"],
    )
    def get(self, request: Request, external_id: str) -> Response:
        product = product_get(external_id)
        images = product.images.select_related("product")
        return Response(s.ImageSerializer(images, many=True, context={"request": request}).data)

    @extend_schema(
        operation_id="product_images_add",
        summary="Add an image to a product",
        description='Send the file (multipart field `file`) or a URL (JSON `{"url": …}`; Vitrine downloads it '
        "from a public address only: no private, loopback or link-local addresses, also after redirects; size "
        "and time limits apply). The image is checked fully before anything is stored, then queued for "
        "indexing: it comes back `pending` (or already `indexed` in the embedded mode, which indexes in-process). "
        "The same bytes sent again give back the existing image (200).",
        parameters=[EXTERNAL_ID_PARAMETER],
        request={"multipart/form-data": s.ImageUploadSerializer, "application/json": s.ImageUrlSerializer},
        responses={200: s.ImageSerializer, 201: s.ImageSerializer, **errors(400, 401, 403, 404, 413, 415, 422, 429)},
        examples=[examples.IMAGE_URL],
        tags=["images"],
    )
    def post(self, request: Request, external_id: str) -> Response:
        product = product_get(external_id)
        source_url = ""
        if isinstance(request.data, QueryDict):
            upload = request.FILES.get("file")
            if upload is None:
                raise ApiError(400, "missing_file", "Send the image as a multipart field named 'file'.")
            content = upload_content(upload)
        else:
            body = s.ImageUrlSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            fetched = url_fetch(body.validated_data["url"])
            content, source_url = fetched.content, body.validated_data["url"]
        result = services.image_create(product=product, content=content, source_url=source_url)
        image = ProductImage.objects.select_related("product").get(pk=result.image.pk)
        return Response(
            s.ImageSerializer(image, context={"request": request}).data,
            status=status.HTTP_201_CREATED if result.is_created else status.HTTP_200_OK,
        )


class ImageView(APIView):
    @extend_schema(
        operation_id="images_retrieve",
        summary="Get an image",
        responses={200: s.ImageSerializer, **errors(401, 403, 404, 429)},
        tags=["images"],
    )
    def get(self, request: Request, image_id: int) -> Response:
        image = _image_get(image_id)
        return Response(s.ImageSerializer(image, context={"request": request}).data)

    @extend_schema(
        operation_id="images_patch",
        summary="Set an image's alt text",
        description="For a shop that has its own alt text: it is used as the photo's `alt` on the pages and is "
        "searched like the product's description. Only the fields sent change; an empty string removes one.",
        request=s.ImagePatchSerializer,
        responses={200: s.ImageSerializer, **errors(400, 401, 403, 404, 415, 429)},
        tags=["images"],
    )
    def patch(self, request: Request, image_id: int) -> Response:
        image = _image_get(image_id)
        body = s.ImagePatchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            services.image_alt_text_set(image=image, **body.validated_data)
        except DjangoValidationError as exc:
            if getattr(exc, "code", None) == "not_found":
                raise ApiError(404, "not_found", f"There is no image {image_id}.") from None
            raise ApiError(400, "invalid", "The image is not valid.", services.validation_fields(exc)) from None
        return Response(s.ImageSerializer(image, context={"request": request}).data)

    @extend_schema(
        operation_id="images_delete",
        summary="Delete an image",
        description="It leaves the index too.",
        responses={204: None, **errors(401, 403, 404, 429)},
        tags=["images"],
    )
    def delete(self, request: Request, image_id: int) -> Response:
        image = _image_get(image_id)
        services.image_delete(image=image)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ImageStatusView(APIView):
    @extend_schema(
        operation_id="images_status",
        summary="Indexing state of many images",
        description="Per image, its state and error, with a summary (pending / indexed / failed). Ask by "
        "image ids (`ids=1,2,3`, e.g. the ids a sync just added) or by product (`product=<external_id>`).",
        parameters=[s.ImageStatusQuerySerializer],
        responses={200: s.ImageStatusSerializer, **errors(400, 401, 403, 404, 429)},
        tags=["images"],
    )
    def get(self, request: Request) -> Response:
        query = s.ImageStatusQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        if ("ids" in params) == ("product" in params):
            raise ApiError(400, "missing_ids", "Give either ids=1,2,3 or product=<external_id>.")
        if "ids" in params:
            try:
                ids = [int(part) for part in params["ids"].split(",") if part.strip()]
            except ValueError:
                raise ApiError(400, "bad_ids", "ids is a comma-separated list of image ids.") from None
            if not ids or len(ids) > MAX_STATUS_IDS or any(i < 1 or i > 2**63 - 1 for i in ids):
                raise ApiError(400, "bad_ids", f"Give 1 to {MAX_STATUS_IDS} image ids.")
            found = selectors.images_status(image_ids=ids)
        else:
            found = selectors.images_status(product=product_get(params["product"]))
        return Response(
            {
                "images": [
                    {"id": i.pk, "product": i.product.external_id, "state": i.state, "error": i.error}
                    for i in found.images
                ],
                "summary": found.summary,
                "missing": found.missing,
            }
        )


class HealthView(APIView):
    """Readiness: can this process serve shoppers and the shop's backend now."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        operation_id="health",
        summary="Is Vitrine ready",
        description="Readiness, for load balancers (also at `/api/v1/health/ready`). No key needed. Counts "
        "images per indexing state and checks what Vitrine depends on, each within a short timeout: `status` "
        "is `ok`, `degraded` (the cache or the broker is down: searches still answer, new photos wait in the "
        "outbox) or `unavailable` (the database or the vector store is down, or the model is still loading in a "
        "freshly started process or could not be loaded: 503 with `Retry-After`).",
        responses={200: s.HealthSerializer, 503: s.HealthSerializer},
        tags=["health"],
        auth=[],
    )
    def get(self, request: Request) -> Response:
        checks = {
            "database": "ok",
            "cache": _cache_check(),
            "broker": _broker_check(),
            "index": _index_check(),
            "model": warmup.state(),
        }
        counts: dict = {}
        try:
            counts = selectors.image_state_counts()
        except DatabaseError as exc:
            logger.warning("Health: the database is unavailable: %s", exc)
            checks["database"] = "unavailable"
        if "unavailable" in (checks["database"], checks["index"]) or checks["model"] != "ok":
            overall = "unavailable"
        elif "unavailable" in (checks["cache"], checks["broker"]):
            overall = "degraded"
        else:
            overall = "ok"
        body = {state: counts.get(state, 0) for state in ProductImage.State.values}
        response = Response(
            {**body, "status": overall, "checks": checks}, status=503 if overall == "unavailable" else 200
        )
        if overall == "unavailable":
            response["Retry-After"] = RETRY_AFTER_UNAVAILABLE
        return response


class ReadinessView(HealthView):
    @extend_schema(
        operation_id="health_ready",
        summary="Is Vitrine ready (the same as /api/v1/health)",
        responses={200: s.HealthSerializer, 503: s.HealthSerializer},
        tags=["health"],
        auth=[],
    )
    def get(self, request: Request) -> Response:
        return super().get(request)


class LivenessView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        operation_id="health_live",
        summary="Is the process alive",
        description="Liveness, for restarting a stuck process: answers 200 whenever the process can answer "
        "at all, whatever its dependencies say (their outages are readiness's business).",
        responses={200: s.LivenessSerializer},
        tags=["health"],
        auth=[],
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


def _cache_check() -> str:
    """Write and read back a value (a cache that is down gives the default)."""
    token = uuid.uuid4().hex
    cache_call("set", None, "vitrine:health", token, 30)
    return "ok" if cache_call("get", None, "vitrine:health") == token else "unavailable"


def _index_check() -> str:
    """One cheap read (which collection the alias names), within the index's read timeout;
    an open circuit breaker answers at once."""
    try:
        get_index().alias_target()
    except IndexUnavailable as exc:
        logger.warning("Health: the vector store is unavailable: %s", exc)
        return "unavailable"
    return "ok"


def _broker_check() -> str:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "in-process"  # no broker: tasks run in the web process
    depth, _ = queue_depth()
    return "ok" if depth is not None else "unavailable"


def upload_content(upload) -> bytes:
    """The uploaded file's bytes; an oversized one is refused before it is read into memory."""
    if upload.size > settings.VITRINE_MAX_IMAGE_BYTES:
        raise ApiError(
            413,
            "file_too_large",
            f"The file is {upload.size / 1048576:.1f} MB; the limit is "
            f"{settings.VITRINE_MAX_IMAGE_BYTES / 1048576:.1f} MB (VITRINE_MAX_IMAGE_BYTES).",
        )
    return upload.read()

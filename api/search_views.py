"""The integration API's search endpoints (v1): search, and products similar to one."""

from __future__ import annotations

from decimal import Decimal

from django.http import QueryDict
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.recorder import query_language, search_record
from analytics.services import EventRefused, event_record
from api import serializers as s
from api.auth import READ, SEARCH
from api.errors import ApiError
from api.parsers import StrictJSONParser, json_loads_strict
from api.schema import errors, examples
from api.views import EXTERNAL_ID_PARAMETER, product_get, upload_content
from catalog.intake import image_decode_rgb
from catalog.models import Product
from embeddings.generative import GenerativeError, imagine_enabled
from embeddings.imagine import Imagined, imagine_photo, imagine_status
from embeddings.query_photos import query_photo_load
from embeddings.search import FacetFilters, SearchError, SearchPage, SearchQuery, catalog_search
from searchsite.fetch import url_fetch

# --- Search ------------------------------------------------------------------------------


class SearchView(APIView):
    scopes = {"POST": SEARCH}

    @extend_schema(
        operation_id="search",
        summary="Search products",
        description="By words (any language), a photo (multipart `image`, `image_base64` or `image_url`), "
        "words and a photo together, or products the shopper likes (`like`, and `unlike` to move away). "
        "`imagine` (when VITRINE_IMAGE_API_URL is set): a description the image API draws; the picture is "
        "searched with like a photo, and `imagined` in the answer links to it (429, 502 and 503 with "
        "`imagine_…` codes when the image API cannot draw it; 422 `imagine_off` while it is not set). "
        "Filters narrow the results; `facets` asks for counts per value. With `cutoff` on (the default) "
        "only relevant products are returned and counted; `total` says how many.",
        request={"application/json": s.SearchRequestSerializer, "multipart/form-data": s.SearchMultipartSerializer},
        responses={200: s.SearchResponseSerializer, **errors(400, 401, 403, 413, 415, 422, 429, 502, 503)},
        examples=[
            examples.SEARCH_TEXT,
            examples.SEARCH_FILTERED,
            examples.SEARCH_LIKE,
            examples.SEARCH_IMAGE_URL,
            examples.SEARCH_IMAGINE,
            examples.SEARCH_RESPONSE,
        ],
        tags=["search"],
    )
    def post(self, request: Request) -> Response:
        data = request.data
        image = None
        if isinstance(data, QueryDict):
            data, upload = _multipart_search_body(data, request.FILES)
            if upload is not None:
                image = upload_content(upload)
        elif not isinstance(data, dict):
            raise ApiError(400, "invalid", "The body must be a JSON object.")
        serializer = s.SearchRequestSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        params = serializer.validated_data
        sources = [name for name in ("image_base64", "image_url", "imagine") if name in params]
        sources += ["image"] if image else []
        if len(sources) > 1:
            raise ApiError(422, "too_many_images", f"Send one photo, not {' and '.join(sources)}.")
        if "imagine" in params and not imagine_enabled():
            raise ApiError(422, "imagine_off", "Imagine it is off: VITRINE_IMAGE_API_URL is not set.")
        if "image_base64" in params:
            image = params["image_base64"]
        elif "image_url" in params:
            image = url_fetch(params["image_url"]).content
        text = params.get("text", "").strip()
        like = _product_ids(params.get("like", []), "like")
        unlike = _product_ids(params.get("unlike", []), "unlike")
        if not (text or image is not None or "imagine" in params or like):
            raise ApiError(
                422, "missing_query", "Give text, a photo (image, image_base64, image_url or imagine) or like."
            )
        if set(like) & set(unlike):
            raise ApiError(422, "bad_refinement", "A product cannot be in both like and unlike.")
        filters = params.get("filters", {})
        price_min, price_max = filters.get("price_min"), filters.get("price_max")
        if price_min is not None and price_max is not None and price_min > price_max:
            raise ApiError(422, "bad_price_range", "filters.price_min is above filters.price_max.")
        facets = params.get("facets", [])
        picture = image_decode_rgb(content=image) if image is not None else None
        imagined = None
        if "imagine" in params:
            # Once the rest of the request is known to be good: a drawing costs seconds and a
            # call of the image API's budget.
            imagined = _imagine(params["imagine"])
            picture = query_photo_load(imagined.token)
        query = SearchQuery(
            text=text,
            image=picture,
            image_key=imagined.token if imagined else "",
            positive_ids=tuple(like),
            negative_ids=tuple(unlike),
            filters=FacetFilters(
                categories=tuple(filters.get("category", ())),
                brands=tuple(filters.get("brand", ())),
                price_min=price_min,
                price_max=price_max,
                attributes=tuple((key, tuple(values)) for key, values in filters.get("tags", {}).items()),
            ),
            active=filters.get("active", True),
            facet_attributes=tuple(name.removeprefix("tags.") for name in facets if name.startswith("tags.")),
            relevant_only=params["cutoff"],
            correct=params["correct"],
            sort=params["sort"],
            limit=params["limit"],
            offset=params["offset"],
        )
        page, search_id = _search(query, imagined=imagined.prompt if imagined else "")
        body = _search_response(request, page, facets, search_id, explain=params["explain"])
        if imagined:
            body["imagined"] = {
                "prompt": imagined.prompt,
                "image_url": request.build_absolute_uri(reverse("query-photo", args=[imagined.token])),
                "cached": imagined.cached,
            }
        return Response(body)


class ProductSimilarView(APIView):
    scopes = {"GET": SEARCH}

    @extend_schema(
        operation_id="products_similar",
        summary="Products similar to one",
        description="For “customers also viewed” widgets: the products whose photos look most like this "
        "product's, the product itself left out. 422 while it has no indexed photo.",
        parameters=[EXTERNAL_ID_PARAMETER, s.SimilarQuerySerializer],
        responses={200: s.SearchResponseSerializer, **errors(400, 401, 403, 404, 422, 429, 503)},
        tags=["search"],
    )
    def get(self, request: Request, external_id: str) -> Response:
        product = product_get(external_id)
        query = s.SimilarQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        page, search_id = _search(
            SearchQuery(
                like_product_id=product.pk,
                relevant_only=params["cutoff"],
                limit=params["limit"],
                offset=params["offset"],
            )
        )
        return Response(_search_response(request, page, [], search_id))


class EventsView(APIView):
    # Either scope: the storefront's search key reports clicks, the shop's back end (which
    # may hold catalog:write) reports purchases.
    scopes = {"POST": READ}
    parser_classes = [StrictJSONParser]  # JSON only (another body type: 415)

    @extend_schema(
        operation_id="events_create",
        summary="Record what a shopper did after a search",
        description="A click, add to cart or purchase of a product, after the search whose `search_id` the "
        "search answer carried. Feeds the admin's search analytics (no personal data: send no user ids). "
        "422 `unknown_search` when the id is not known (never handed out, or older than "
        "VITRINE_ANALYTICS_DAYS), 422 `unknown_product`, 503 `analytics_off` with VITRINE_ANALYTICS=0.",
        request=s.EventSerializer,
        responses={204: None, **errors(400, 401, 403, 415, 422, 429, 503)},
        examples=[examples.EVENT_CLICK],
        tags=["search"],
    )
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise ApiError(400, "invalid", "The body must be a JSON object.")
        serializer = s.EventSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        event = serializer.validated_data
        try:
            event_record(
                search_id=event["search_id"],
                event_type=event["type"],
                external_id=event["product"],
                position=event.get("position"),
            )
        except EventRefused as refused:
            fields = {refused.field: [refused.message]} if refused.field else None
            raise ApiError(refused.status, refused.code, refused.message, fields) from None
        return Response(status=204)


def _imagine(prompt: str) -> Imagined:
    """The picture drawn for ``prompt`` (or drawn lately for the same words), or the API's
    error: 429 wait (budget spent, rate limited), 503 the image API is not answering, 502
    it answered with something unusable; each ``imagine_<the client's code>``."""
    try:
        return imagine_photo(prompt)
    except GenerativeError as exc:
        if exc.code == "empty_prompt":
            raise ApiError(400, "invalid", "imagine: describe what to draw.", {"imagine": [exc.message]}) from None
        status = imagine_status(exc)
        if status is None:
            raise ApiError(422, "imagine_off", exc.message) from None
        http_status, retry_after = status
        raise ApiError(http_status, f"imagine_{exc.code}", exc.message, retry_after=retry_after) from None


def _search(query: SearchQuery, *, imagined: str = "") -> tuple[SearchPage, str]:
    """The page of results and its search id (recorded for analytics; "" when they are off)."""
    try:
        page = catalog_search(query)
    except SearchError as exc:
        raise ApiError(422, exc.code, exc.message) from None
    search_id = search_record(
        page=page,
        query=query.text,
        language=query_language(imagined or query.text),
        source="api",
        imagined=imagined,
    )
    return page, search_id


def _product_ids(external_ids: list[str], field: str) -> list[int]:
    external_ids = list(dict.fromkeys(external_ids))
    found = dict(Product.objects.filter(external_id__in=external_ids).values_list("external_id", "pk"))
    unknown = [e for e in external_ids if e not in found]
    if unknown:
        raise ApiError(
            422,
            "unknown_product",
            f"{field}: no product with external_id {', '.join(repr(e) for e in unknown[:5])}.",
            {field: [f"Unknown external_id {e!r}." for e in unknown]},
        )
    return [found[e] for e in external_ids]


def _multipart_search_body(data: QueryDict, files) -> tuple[dict, object]:
    body: dict = {}
    for name in ("text", "image_url", "imagine", "limit", "offset", "cutoff", "sort", "explain", "correct"):
        if name in data:
            body[name] = data[name]
    for name in ("like", "unlike", "facets"):
        if name in data:
            body[name] = data.getlist(name)
    if "filters" in data:
        try:
            body["filters"] = json_loads_strict(data["filters"])
        except ValueError:
            raise ApiError(400, "invalid", "filters must be a JSON object.", {"filters": ["Not JSON."]}) from None
    return body, files.get("image")


def _search_response(
    request: Request, page: SearchPage, facets: list[str], search_id: str, *, explain: bool = False
) -> dict:
    # The API's facet names (category, brand, tags.<key>) by the search service's (attr.<key>).
    wanted = {name.replace("tags.", "attr.", 1): name for name in facets if name != "price"}
    body = {
        "results": [
            {
                "id": hit.product.pk,
                "external_id": hit.product.external_id,
                "title": hit.product.title,
                "price": _money(hit.product.price),
                "currency": hit.product.currency,
                "url": hit.product.url,
                "category": hit.product.category,
                "brand": hit.product.brand,
                "thumbnail_url": s.thumbnail_url(request, hit.image.sha256),
                "image_id": hit.image.pk,
                "score": round(hit.score, 6),
                **({"explain": hit.explain} if explain else {}),
            }
            for hit in page.hits
        ],
        "corrected_query": page.corrected_query,
        "suggestions": list(page.suggestions),
        "understood": page.understood,
        "total": page.total,
        "total_is_lower_bound": page.total_is_capped,
        "loosely_related": page.loosely_related,
        "facet_counts_exact": page.facet_counts_exact,
        # Asked-for facets with no values are listed too, empty.
        "facets": {name: [] for name in wanted.values()},
        "query_kind": page.kind,
        "embedding_space": page.embedding_space,
        "cutoff": page.cutoff,
        "fusion": page.fusion or None,
        "limit": page.limit,
        "offset": page.offset,
        "took_ms": round(page.took_ms, 1),
        "search_id": search_id,
    }
    for facet in page.facets:
        if facet.name in wanted:
            body["facets"][wanted[facet.name]] = [
                {"value": v.value, "count": v.count, "selected": v.selected} for v in facet.values
            ]
    if explain:
        body["rules_fired"] = [dict(rule) for rule in page.rules_fired]
    if "price" in facets:
        body["price_buckets"] = [
            {"min": _money(b.low), "max": _money(b.high), "count": b.count} for b in page.price_buckets
        ]
    return body


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"

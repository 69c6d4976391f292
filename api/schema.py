"""OpenAPI pieces for drf-spectacular: the API key security schemes, the shared error
responses, and request/response examples."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse

from api.serializers import ErrorSerializer

ERROR_MEANINGS = {
    400: "The request is malformed (the fields say what is wrong).",
    401: "No API key, or not a valid one (revoked and expired keys included).",
    403: "The API key lacks the scope this needs.",
    404: "No such product or image.",
    413: "Too large: the image, the body, or the number of products.",
    415: "Not an image Vitrine reads, or a body type this endpoint does not take.",
    422: "Well-formed but impossible: e.g. nothing to search for, an unknown product in like, "
    "a URL on a private address, imagine while the image API is off (imagine_off).",
    429: "Too many requests for this key, or (imagine) the image API's budget is spent or it is rate "
    "limiting; Retry-After says when to try again.",
    502: "(imagine) The image API answered with something that is not a usable picture, or refused "
    "to draw (imagine_not_an_image, imagine_malformed_response, imagine_refused).",
    503: "The index, the model or (imagine) the image API is unavailable; Retry-After suggests when to try again.",
}


def errors(*statuses: int) -> dict:
    return {code: OpenApiResponse(ErrorSerializer, description=ERROR_MEANINGS[code]) for code in statuses}


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "api.auth.ApiKeyAuthentication"
    name = ["BearerKey", "HeaderKey"]

    def get_security_requirement(self, auto_schema):
        return [{"BearerKey": []}, {"HeaderKey": []}]  # either one (a list is "or")

    def get_security_definition(self, auto_schema):
        return [
            {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <API key>`"},
            {"type": "apiKey", "in": "header", "name": "X-Api-Key", "description": "`X-Api-Key: <API key>`"},
        ]


class examples:  # noqa: N801 - a namespace, read as ``examples.SEARCH_TEXT``
    PRODUCT_PUT = OpenApiExample(
        "A product",
        value={
            "title": "Blue striped mug",
            "description": "Stoneware, 350 ml.",
            "brand": "Nordhem",
            "category": "Mugs",
            "price": "14.90",
            "currency": "EUR",
            "url": "https://shop.example/p/mug-1",
            "attributes": {"colour": "blue", "pattern": "striped"},
            "is_active": True,
        },
        request_only=True,
    )
    PRODUCT_PATCH = OpenApiExample("New price", value={"price": "12.90"}, request_only=True)
    BULK_REQUEST = OpenApiExample(
        "Two products",
        value={
            "products": [
                {"external_id": "mug-1", "title": "Blue striped mug", "price": "14.90", "currency": "EUR"},
                {"external_id": "mug-2", "title": "Red dotted mug", "price": "-3"},
            ]
        },
        request_only=True,
    )
    BULK_RESPONSE = OpenApiExample(
        "One written, one refused",
        value={
            "results": [
                {"index": 0, "external_id": "mug-1", "status": "created", "id": 41},
                {
                    "index": 1,
                    "external_id": "mug-2",
                    "status": "error",
                    "error": {
                        "code": "invalid",
                        "message": "The product is not valid.",
                        "fields": {"price": ["Ensure this value is greater than or equal to 0."]},
                    },
                },
            ],
            "summary": {"created": 1, "updated": 0, "unchanged": 0, "error": 1},
        },
        response_only=True,
    )
    IMAGE_URL = OpenApiExample("By URL", value={"url": "https://cdn.shop.example/mug-1-front.jpg"}, request_only=True)
    SEARCH_TEXT = OpenApiExample("Words", value={"text": "blue striped mug", "limit": 10}, request_only=True)
    SEARCH_FILTERED = OpenApiExample(
        "Words, filters and facets",
        value={
            "text": "红色条纹杯子",
            "filters": {"brand": ["Nordhem"], "price_max": "20", "tags": {"pattern": ["striped"]}},
            "facets": ["category", "brand", "price", "tags.colour"],
            "sort": "price",
        },
        request_only=True,
    )
    SEARCH_LIKE = OpenApiExample(
        "Recommendations", value={"like": ["mug-1"], "unlike": ["mug-7"], "limit": 8}, request_only=True
    )
    SEARCH_IMAGINE = OpenApiExample(
        "Imagine it: a description drawn, then searched with",
        value={"imagine": "a blue dotted vase", "limit": 10},
        request_only=True,
    )
    SEARCH_IMAGE_URL = OpenApiExample(
        "A photo by URL, with words",
        value={"image_url": "https://cdn.example.org/photo.jpg", "text": "but in red"},
        request_only=True,
    )
    EVENT_CLICK = OpenApiExample(
        "A click on the 3rd result",
        value={"type": "click", "search_id": "5f0c9a1e2b7d43a8c6e1f024", "product": "mug-1", "position": 3},
        request_only=True,
    )
    SEARCH_RESPONSE = OpenApiExample(
        "Results",
        value={
            "results": [
                {
                    "id": 41,
                    "external_id": "mug-1",
                    "title": "Blue striped mug",
                    "price": "14.90",
                    "currency": "EUR",
                    "url": "https://shop.example/p/mug-1",
                    "category": "Mugs",
                    "brand": "Nordhem",
                    "thumbnail_url": "http://vitrine.example/thumbnails/3f…-320.webp",
                    "image_id": 97,
                    "score": 0.61,
                }
            ],
            "total": 1,
            "total_is_lower_bound": False,
            "loosely_related": 12,
            "facet_counts_exact": True,
            "facets": {"brand": [{"value": "Nordhem", "count": 1, "selected": False}]},
            "query_kind": "text",
            "embedding_space": "vitrine-demo-clip@…",
            "cutoff": 0.4935,
            "limit": 20,
            "offset": 0,
            "took_ms": 21.4,
            "search_id": "5f0c9a1e2b7d43a8c6e1f024",
        },
        response_only=True,
    )

"""What the API takes and gives. Input serializers validate (and document) requests;
output serializers document responses, which the views build as plain dicts."""

from __future__ import annotations

import base64
import binascii
import re

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.errors import ApiError
from catalog.models import Product, ProductImage
from catalog.validators import attributes_validate

MAX_REFERENCES = 20
MAX_FACETS = 20
MAX_OFFSET = 10_000
DEFAULT_LIMIT = 20
SORTS = ["relevance", "price", "-price", "newest"]
FACET_NAME = re.compile(r"^(category|brand|price|tags\.[A-Za-z0-9_\-]{1,64})$")
TAG_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
THUMBNAIL_SIZE = 320


class RejectUnknownFields:
    """A misspelt field is an error, not silently nothing (``colour`` sent beside, not in,
    ``attributes``). ``ignored_fields``: read-only fields a client may send back unchanged."""

    ignored_fields: tuple[str, ...] = ()

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = set(data) - set(self.fields) - set(self.ignored_fields)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in sorted(unknown)})
        return super().to_internal_value(data)


# --- Products ----------------------------------------------------------------------------


class ProductWriteSerializer(RejectUnknownFields, serializers.Serializer):
    """A product as the shop sends it. PUT replaces: fields left out take their defaults."""

    ignored_fields = ("id", "external_id", "created_at", "updated_at", "images", "image_counts")

    title = serializers.CharField(max_length=500)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=20_000)
    brand = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    category = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    price = serializers.DecimalField(
        required=False, allow_null=True, default=None, max_digits=12, decimal_places=2, min_value=0
    )
    currency = serializers.RegexField(
        r"^[A-Za-z]{3}$", required=False, allow_blank=True, default="", help_text="ISO 4217, e.g. EUR"
    )
    url = serializers.URLField(
        required=False, allow_blank=True, default="", max_length=2000, help_text="The product's page in the shop"
    )
    attributes = serializers.DictField(
        required=False,
        default=dict,
        validators=[attributes_validate],
        help_text='Facts to filter and facet on, e.g. {"colour": "red", "tags": ["gift"]}',
    )
    is_active = serializers.BooleanField(required=False, default=True, help_text="Inactive products are not found")

    def validate_attributes(self, value):
        return {key: item for key, item in value.items() if item is not None}


class ProductPatchSerializer(ProductWriteSerializer):
    """Only the fields sent change. ``attributes`` is merged key by key; null removes a key."""

    title = serializers.CharField(max_length=500, required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=20_000)
    brand = serializers.CharField(required=False, allow_blank=True, max_length=200)
    category = serializers.CharField(required=False, allow_blank=True, max_length=200)
    price = serializers.DecimalField(required=False, allow_null=True, max_digits=12, decimal_places=2, min_value=0)
    currency = serializers.RegexField(r"^[A-Za-z]{3}$", required=False, allow_blank=True)
    url = serializers.URLField(required=False, allow_blank=True, max_length=2000)
    attributes = serializers.DictField(required=False, validators=[attributes_validate])
    is_active = serializers.BooleanField(required=False)

    def validate_attributes(self, value):
        return value  # nulls are removals, applied by the view


class BulkProductSerializer(ProductWriteSerializer):
    ignored_fields = ("id", "created_at", "updated_at", "images", "image_counts")
    external_id = serializers.CharField(max_length=255, trim_whitespace=False)


@extend_schema_field(BulkProductSerializer)
class BulkItemField(serializers.JSONField):
    """Any JSON: each item is validated on its own, so one bad item does not refuse the rest."""

    def __init__(self, **kwargs):
        super().__init__(allow_null=True, **kwargs)


class BulkUpsertSerializer(RejectUnknownFields, serializers.Serializer):
    products = serializers.ListField(
        child=BulkItemField(),
        min_length=1,
        help_text="Products with their external_id; at most VITRINE_API_BULK_MAX (500) per request.",
    )


class ImagePatchSerializer(RejectUnknownFields, serializers.Serializer):
    """The fields of an image a client may change: its alt text (a shop that has its own)."""

    alt_text = serializers.CharField(
        required=False, allow_blank=True, max_length=300, help_text="What the photo shows (English); empty removes it"
    )
    alt_text_zh = serializers.CharField(
        required=False, allow_blank=True, max_length=300, help_text="The same in Simplified Chinese"
    )

    def validate(self, data):
        if not data:
            raise serializers.ValidationError("Send alt_text, alt_text_zh or both.")
        return data


class ImageSerializer(serializers.ModelSerializer):
    product = serializers.CharField(source="product.external_id", help_text="The product's external_id")
    url = serializers.SerializerMethodField(help_text="The stored file")
    thumbnail_url = serializers.SerializerMethodField()
    duplicate_of = serializers.IntegerField(source="duplicate_of_id", allow_null=True)
    alt_text = serializers.CharField(
        read_only=True, help_text="What the photo shows, in a sentence (English; empty: none yet)"
    )
    alt_text_zh = serializers.CharField(read_only=True, help_text="The same in Simplified Chinese")

    class Meta:
        model = ProductImage
        fields = [
            "id",
            "product",
            "state",
            "error",
            "url",
            "thumbnail_url",
            "alt_text",
            "alt_text_zh",
            "source_url",
            "sha256",
            "format",
            "width",
            "height",
            "byte_size",
            "embedding_space",
            "duplicate_of",
            "created_at",
            "indexed_at",
        ]

    def get_url(self, image: ProductImage) -> str:
        return self.context["request"].build_absolute_uri(image.file.url)

    def get_thumbnail_url(self, image: ProductImage) -> str:
        return thumbnail_url(self.context["request"], image.sha256)


class ProductSerializer(serializers.ModelSerializer):
    price = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    attributes = serializers.JSONField()

    class Meta:
        model = Product
        fields = [
            "id",
            "external_id",
            "title",
            "description",
            "brand",
            "category",
            "price",
            "currency",
            "url",
            "attributes",
            "is_active",
            "created_at",
            "updated_at",
        ]


class ImageCountsSerializer(serializers.Serializer):
    pending = serializers.IntegerField()
    indexed = serializers.IntegerField()
    failed = serializers.IntegerField()


DEPENDENCY_STATES = ["ok", "unavailable"]


class HealthChecksSerializer(serializers.Serializer):
    database = serializers.ChoiceField(DEPENDENCY_STATES)
    cache = serializers.ChoiceField(DEPENDENCY_STATES, help_text="Redis (throttling, query cache)")
    broker = serializers.ChoiceField(
        ["ok", "unavailable", "in-process"], help_text="The Celery broker; in-process: none (the embedded mode)"
    )
    index = serializers.ChoiceField(DEPENDENCY_STATES, help_text="The vector store (searches need it)")
    model = serializers.ChoiceField(
        ["ok", "loading", "unavailable"],
        help_text="The CLIP model in this process: loading while a fresh server warms up (a few seconds), "
        "unavailable when its weights could not be loaded",
    )


class LivenessSerializer(serializers.Serializer):
    status = serializers.ChoiceField(["ok"])


class HealthSerializer(ImageCountsSerializer):
    status = serializers.ChoiceField(["ok", "degraded", "unavailable"])
    checks = HealthChecksSerializer()


class ProductDetailSerializer(ProductSerializer):
    images = ImageSerializer(many=True)
    image_counts = ImageCountsSerializer()

    class Meta(ProductSerializer.Meta):
        fields = [*ProductSerializer.Meta.fields, "images", "image_counts"]


class ProductListSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Products matching the filters")
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    results = ProductSerializer(many=True)


class ProductListQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(required=False, default=50, min_value=1, max_value=500)
    offset = serializers.IntegerField(required=False, default=0, min_value=0, max_value=10_000_000)
    category = serializers.CharField(required=False, max_length=200)
    brand = serializers.CharField(required=False, max_length=200)
    is_active = serializers.BooleanField(required=False, allow_null=True, default=None)
    updated_since = serializers.DateTimeField(required=False, help_text="ISO 8601; products changed at or after it")


class BulkItemErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(required=False)


class BulkItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position in the request")
    external_id = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(["created", "updated", "unchanged", "error"])
    id = serializers.IntegerField(required=False, help_text="The product's Vitrine id (not on errors)")
    error = BulkItemErrorSerializer(required=False)


class BulkSummarySerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    error = serializers.IntegerField()


class BulkUpsertResultSerializer(serializers.Serializer):
    results = BulkItemResultSerializer(many=True)
    summary = BulkSummarySerializer()


# --- Images ------------------------------------------------------------------------------


class ImageUrlSerializer(RejectUnknownFields, serializers.Serializer):
    url = serializers.CharField(max_length=2000, help_text="http(s) URL on a public address")


class ImageUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="JPEG, PNG, WebP, GIF, BMP or TIFF")


class ImageStatusQuerySerializer(serializers.Serializer):
    ids = serializers.CharField(required=False, help_text="Comma-separated image ids (at most 1000)", max_length=20_000)
    product = serializers.CharField(required=False, max_length=255, help_text="A product's external_id")


class ImageStatusItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    product = serializers.CharField()
    state = serializers.ChoiceField(ProductImage.State.values)
    error = serializers.CharField(allow_blank=True)


class ImageStatusSerializer(serializers.Serializer):
    images = ImageStatusItemSerializer(many=True)
    summary = ImageCountsSerializer()
    missing = serializers.ListField(child=serializers.IntegerField(), help_text="Asked-for ids that do not exist")


# --- Search ------------------------------------------------------------------------------


class SearchFiltersSerializer(RejectUnknownFields, serializers.Serializer):
    category = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, max_length=50, help_text="Any of these"
    )
    brand = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, max_length=50, help_text="Any of these"
    )
    price_min = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0, required=False)
    price_max = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0, required=False)
    tags = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField(max_length=200), max_length=50),
        required=False,
        help_text='Product attributes (tags accepted in the admin included): {"colour": ["red", "blue"]}; '
        "a product matches a key when it has any of its values, and must match every key",
    )
    active = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=True,
        help_text="true (default): active products only; false: inactive only; null: both",
    )

    def validate_tags(self, value):
        for key in value:
            if not TAG_KEY.match(key):
                raise serializers.ValidationError(f"{key!r} is not an attribute name (letters, digits, _ and -).")
        if len(value) > MAX_FACETS:
            raise serializers.ValidationError(f"At most {MAX_FACETS} attributes.")
        return value


class SearchRequestSerializer(RejectUnknownFields, serializers.Serializer):
    text = serializers.CharField(required=False, allow_blank=True, max_length=500, help_text="Words, any language")
    image_base64 = serializers.CharField(
        required=False, help_text="A photo, base64 (a data: URL works too); at most VITRINE_MAX_IMAGE_BYTES decoded"
    )
    image_url = serializers.CharField(
        required=False, max_length=2000, help_text="A photo on a public http(s) address (fetched by Vitrine)"
    )
    imagine = serializers.CharField(
        required=False,
        max_length=4000,
        help_text="“Imagine it”: a description (any language) that the image API (VITRINE_IMAGE_API_URL) "
        "draws; the picture is searched with like a photo (text adds words to it). The same words again "
        "reuse the picture (VITRINE_IMAGINE_CACHE_SECONDS). Only these words are sent; cut at "
        "VITRINE_IMAGINE_MAX_CHARS. 422 imagine_off while the image API is not set",
    )
    like = serializers.ListField(
        child=serializers.CharField(max_length=255),
        required=False,
        max_length=MAX_REFERENCES,
        help_text="external_ids of products the shopper likes: alone, recommends like them; with text or "
        "a photo, moves the results towards them",
    )
    unlike = serializers.ListField(
        child=serializers.CharField(max_length=255),
        required=False,
        max_length=MAX_REFERENCES,
        help_text="external_ids to leave out and move away from",
    )
    filters = SearchFiltersSerializer(required=False)
    facets = serializers.ListField(
        child=serializers.CharField(max_length=70),
        required=False,
        max_length=MAX_FACETS,
        help_text="Facets to count: category, brand, price, tags.<attribute>",
    )
    limit = serializers.IntegerField(required=False, default=DEFAULT_LIMIT, min_value=1, max_value=100)
    offset = serializers.IntegerField(required=False, default=0, min_value=0, max_value=MAX_OFFSET)
    cutoff = serializers.BooleanField(
        required=False,
        default=True,
        help_text="true: only relevant products (the calibrated relevance cutoff); false: everything, nearest first",
    )
    sort = serializers.ChoiceField(SORTS, required=False, default="relevance")
    explain = serializers.BooleanField(
        required=False,
        default=False,
        help_text="true: each result says how it scored (keyword, vector and fused scores, relevant or not, "
        "the merchandising rules' effect and the final score), and rules_fired lists the rules that fired",
    )
    correct = serializers.BooleanField(
        required=False,
        default=True,
        help_text="true: misspelt words are corrected against the catalog's words (corrected_query says so); "
        "false: the words are searched as typed",
    )

    def validate_facets(self, value):
        for name in value:
            if not FACET_NAME.match(name):
                raise serializers.ValidationError(
                    f"{name!r} is not a facet; use category, brand, price or tags.<attribute>."
                )
        return list(dict.fromkeys(value))

    def validate_image_base64(self, value):
        if len(value) > max_image_base64_chars():
            limit = settings.VITRINE_MAX_IMAGE_BYTES / 1048576
            raise ApiError(413, "file_too_large", f"The photo is over {limit:.1f} MB (VITRINE_MAX_IMAGE_BYTES).")
        if value.startswith("data:"):
            value = value.partition(",")[2]
        try:
            content = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise serializers.ValidationError("Not valid base64.") from None
        return content


class SearchMultipartSerializer(serializers.Serializer):
    """The same request as multipart/form-data, with the photo as a file. Repeat ``like``,
    ``unlike`` and ``facets`` for several values; ``filters`` is a JSON object as text."""

    image = serializers.FileField(required=False)
    text = serializers.CharField(required=False, allow_blank=True, max_length=500)
    image_url = serializers.CharField(required=False, max_length=2000)
    imagine = serializers.CharField(required=False, max_length=4000)
    like = serializers.ListField(child=serializers.CharField(max_length=255), required=False)
    unlike = serializers.ListField(child=serializers.CharField(max_length=255), required=False)
    filters = serializers.CharField(required=False, help_text='JSON, e.g. {"brand": ["Nordhem"]}')
    facets = serializers.ListField(child=serializers.CharField(max_length=70), required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100)
    offset = serializers.IntegerField(required=False, min_value=0, max_value=MAX_OFFSET)
    cutoff = serializers.BooleanField(required=False)
    sort = serializers.ChoiceField(SORTS, required=False)
    explain = serializers.BooleanField(required=False)
    correct = serializers.BooleanField(required=False)


class SimilarQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(required=False, default=12, min_value=1, max_value=100)
    offset = serializers.IntegerField(required=False, default=0, min_value=0, max_value=MAX_OFFSET)
    cutoff = serializers.BooleanField(
        required=False, default=True, help_text="false: the nearest products even when not much alike"
    )


class UnderstoodAttributeSerializer(serializers.Serializer):
    key = serializers.CharField()
    value = serializers.CharField()


class UnderstoodSerializer(serializers.Serializer):
    brands = serializers.ListField(child=serializers.CharField(), help_text="Brands the words name")
    categories = serializers.ListField(child=serializers.CharField(), help_text="Categories the words name")
    attributes = UnderstoodAttributeSerializer(many=True, help_text="Attribute values the words name")
    unknown_words = serializers.ListField(
        child=serializers.CharField(), help_text="Words no product has (left to the vectors)"
    )


class RuleReferenceSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class SkippedPinSerializer(serializers.Serializer):
    product_id = serializers.IntegerField()
    position = serializers.IntegerField()
    reason = serializers.CharField(help_text="Why the pinned product is not listed (inactive, no indexed photo…)")


class RuleFiredSerializer(RuleReferenceSerializer):
    skipped_pins = SkippedPinSerializer(many=True)


class ExplainSerializer(serializers.Serializer):
    keyword = serializers.FloatField(
        allow_null=True, help_text="The keyword side's score (IDF-weighted terms); null: no keyword match"
    )
    vector = serializers.FloatField(help_text="Cosine similarity of the photo to the query")
    fused = serializers.FloatField(
        help_text="The order before merchandising rules: reciprocal rank fusion (or normalised score fusion) "
        "for words; the similarity for photos and similar products"
    )
    relevant = serializers.BooleanField(help_text="Shown as relevant (above the relevance cutoff)")
    final = serializers.FloatField(help_text="The order after rules: fused × factor (divided when negative)")
    factor = serializers.FloatField(help_text="The product of the boosts that selected it (1: none)")
    pinned = serializers.IntegerField(allow_null=True, help_text="The position a rule pinned it to (null: not pinned)")
    rules = RuleReferenceSerializer(many=True, help_text="The rules that boosted, buried or pinned it")


class SearchHitSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    title = serializers.CharField()
    price = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    currency = serializers.CharField(allow_blank=True)
    url = serializers.CharField(allow_blank=True, help_text="The product's page in the shop")
    category = serializers.CharField(allow_blank=True)
    brand = serializers.CharField(allow_blank=True)
    thumbnail_url = serializers.CharField(help_text="320 px WebP of the photo that matched")
    image_id = serializers.IntegerField(help_text="The photo that matched")
    score = serializers.FloatField(help_text="Cosine similarity to the query")
    explain = ExplainSerializer(required=False, help_text="With explain: true")


class FacetValueSerializer(serializers.Serializer):
    value = serializers.CharField()
    count = serializers.IntegerField(help_text="Results if this value were chosen (with the other filters)")
    selected = serializers.BooleanField()


class PriceBucketSerializer(serializers.Serializer):
    min = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True, help_text="Inclusive")
    max = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True, help_text="Exclusive")
    count = serializers.IntegerField()


class ImaginedSerializer(serializers.Serializer):
    prompt = serializers.CharField(help_text="The description as it was sent (spaces collapsed, cut to length)")
    image_url = serializers.URLField(
        help_text="The drawn picture (JPEG, at most 512 px), to show beside the results; kept VITRINE_QUERY_PHOTO_DAYS"
    )
    cached = serializers.BooleanField(help_text="true: drawn earlier for the same words; no image API call was made")


class SearchResponseSerializer(serializers.Serializer):
    results = SearchHitSerializer(many=True)
    total = serializers.IntegerField(help_text="Relevant products matching the filters")
    total_is_lower_bound = serializers.BooleanField(
        help_text="true when the query reached VITRINE_SEARCH_CANDIDATES products (there may be more)"
    )
    loosely_related = serializers.IntegerField(help_text="Products below the relevance cutoff (cutoff on)")
    facet_counts_exact = serializers.BooleanField(
        help_text="False when the query's nearest VITRINE_SEARCH_CANDIDATES products were all relevant: "
        "facet counts are then over those products only"
    )
    facets = serializers.DictField(
        child=FacetValueSerializer(many=True), help_text="Per asked facet: its values and counts"
    )
    price_buckets = PriceBucketSerializer(many=True, required=False, help_text="When the price facet is asked")
    query_kind = serializers.ChoiceField(["text", "image", "image+text", "product", "products"])
    embedding_space = serializers.CharField(help_text="The model (and weights) the vectors come from")
    cutoff = serializers.FloatField(allow_null=True, help_text="The relevance cutoff used (null: none)")
    corrected_query = serializers.CharField(
        allow_null=True, help_text="The words searched when spelling was corrected (null: as typed)"
    )
    suggestions = serializers.ListField(
        child=serializers.CharField(), help_text="Words to try, when nothing relevant matches"
    )
    fusion = serializers.CharField(
        allow_null=True, help_text="rrf or score: how keyword and vector evidence were fused (null: vectors alone)"
    )
    understood = UnderstoodSerializer(
        allow_null=True, help_text="How the words were read against the catalog (null: no words, or vectors alone)"
    )
    rules_fired = RuleFiredSerializer(
        many=True, required=False, help_text="With explain: true: the merchandising rules that fired for the query"
    )
    imagined = ImaginedSerializer(required=False, help_text="With imagine: the picture drawn and searched with")
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    took_ms = serializers.FloatField()
    search_id = serializers.CharField(
        allow_blank=True,
        help_text="This search's random id, to name it in POST /api/v1/events (clicks, add to cart, purchases); "
        "empty when search analytics are off (VITRINE_ANALYTICS=0)",
    )


class EventSerializer(RejectUnknownFields, serializers.Serializer):
    type = serializers.ChoiceField(
        ["click", "add_to_cart", "purchase"], help_text="What the shopper did with a product from the results"
    )
    search_id = serializers.CharField(max_length=64, help_text="The search_id of the search it followed")
    product = serializers.CharField(max_length=255, help_text="The product's external_id")
    position = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, help_text="1-based position in the results (clicks)"
    )


# --- Errors ------------------------------------------------------------------------------


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, for programs: e.g. invalid, not_found, private_address")
    message = serializers.CharField(help_text="For people")
    fields = serializers.DictField(required=False, help_text="Per field, what is wrong")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


def thumbnail_url(request, sha256: str) -> str:
    return request.build_absolute_uri(reverse("thumbnail", args=[f"{sha256}-{THUMBNAIL_SIZE}.webp"]))


def max_image_base64_chars() -> int:
    """Base64 of the largest accepted photo, with room for a data: URL's header."""
    return (settings.VITRINE_MAX_IMAGE_BYTES + 2) // 3 * 4 + 100

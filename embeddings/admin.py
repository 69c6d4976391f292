"""The embeddings app's admin: relevance cutoffs per embedding space, the zero-shot tag
taxonomy and its suggestions, and the products' "Suggest tags" action (added to the
catalog's product admin from here: the catalog knows nothing of tagging)."""

from django.contrib import admin, messages
from django.utils.html import format_html

from catalog.admin import ProductAdmin
from catalog.models import Product
from embeddings.models import RelevanceCutoff, TagFacet, TagSuggestion, TagValue
from embeddings.tagging import tags_decide, tags_suggest


@admin.register(RelevanceCutoff)
class RelevanceCutoffAdmin(admin.ModelAdmin):
    """The relevance cutoffs per embedding space: calibrated values, and overrides."""

    list_display = ["embedding_space", "text_auto", "text_override", "image_auto", "image_override", "calibrated_at"]
    fields = [
        "embedding_space",
        ("text_auto", "text_override"),
        ("image_auto", "image_override"),
        "sample_products",
        "stats",
        "calibrated_at",
    ]
    readonly_fields = ["embedding_space", "text_auto", "image_auto", "sample_products", "stats", "calibrated_at"]

    def has_add_permission(self, request):
        return False  # rows come from calibration


class TaggingProductAdmin(ProductAdmin):
    """The catalog's product admin with the zero-shot "Suggest tags" action."""

    actions = [*ProductAdmin.actions, "suggest_tags"]

    @admin.action(description="Suggest tags for the selected products (zero-shot, from the taxonomy)")
    def suggest_tags(self, request, queryset):
        report = tags_suggest(list(queryset.values_list("pk", flat=True)))
        self.message_user(
            request,
            f"{report.suggested} tags suggested for {report.products} products; review them under Tag suggestions.",
        )


admin.site.unregister(Product)
admin.site.register(Product, TaggingProductAdmin)


class TagValueInline(admin.TabularInline):
    model = TagValue
    extra = 3


@admin.register(TagFacet)
class TagFacetAdmin(admin.ModelAdmin):
    """The taxonomy the model tags products with."""

    list_display = ["name", "name_zh", "prompt", "value_count"]
    inlines = [TagValueInline]

    @admin.display(description="Values")
    def value_count(self, facet: TagFacet) -> int:
        return facet.values.count()


@admin.register(TagSuggestion)
class TagSuggestionAdmin(admin.ModelAdmin):
    """Review the model's tag suggestions: accept (into the product's attributes) or reject."""

    list_display = ["photo", "product", "facet", "suggested_value", "confidence", "state", "current_value"]
    list_filter = ["state", "value__facet"]
    search_fields = ["product__title", "product__external_id", "value__value"]
    list_select_related = ["product", "value__facet"]
    actions = ["accept", "reject"]
    readonly_fields = ["product", "value", "confidence", "state", "created_at", "decided_at"]

    def has_add_permission(self, request) -> bool:
        return False  # suggestions come from the model (`suggest_tags`, or the products' action)

    @admin.display(description="Photo")
    def photo(self, suggestion: TagSuggestion) -> str:
        image = suggestion.product.images.first()
        if image is None:
            return ""
        return format_html('<img src="{}" alt="" style="max-height:48px;max-width:72px">', image.thumbnail_url)

    @admin.display(description="Facet", ordering="value__facet__name")
    def facet(self, suggestion: TagSuggestion) -> str:
        return suggestion.value.facet.name

    @admin.display(description="Suggested", ordering="value__value")
    def suggested_value(self, suggestion: TagSuggestion) -> str:
        return suggestion.value.value

    @admin.display(description="Product has")
    def current_value(self, suggestion: TagSuggestion) -> str:
        return str((suggestion.product.attributes or {}).get(suggestion.value.facet.name, ""))

    @admin.action(description="Accept the selected suggestions (write them into the products)")
    def accept(self, request, queryset):
        count = tags_decide(queryset, accept=True)
        self.message_user(request, f"{count} tags accepted.", messages.SUCCESS)

    @admin.action(description="Reject the selected suggestions")
    def reject(self, request, queryset):
        count = tags_decide(queryset, accept=False)
        self.message_user(request, f"{count} suggestions rejected.", messages.SUCCESS)

"""The embeddings app's admin: relevance cutoffs per embedding space, the zero-shot tag
taxonomy and its suggestions, and the products' "Suggest tags" action (added to the
catalog's product admin from here: the catalog knows nothing of tagging)."""

import json

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.db.models import F
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from catalog.admin import ProductAdmin, space_id_shown
from catalog.models import Product

# Also registers the caption suggestions' review and the images' caption action.
from embeddings.admin_captions import actions_without_captions_when_off, captions_write_for
from embeddings.models import RelevanceCutoff, Synonym, TagFacet, TagSuggestion, TagValue
from embeddings.search import SearchError, SearchQuery, catalog_search
from embeddings.search.understanding import vocabulary, word_term
from embeddings.tagging import tags_decide, tags_suggest
from searchsite.errors import ServiceUnavailable


@admin.register(RelevanceCutoff)
class RelevanceCutoffAdmin(admin.ModelAdmin):
    """The relevance cutoffs per embedding space: calibrated values, and overrides. "Preview"
    shows what typed overrides would do to a few sample searches, before saving."""

    change_form_template = "admin/embeddings/relevancecutoff/change_form.html"
    list_display = ["space", "text_auto", "text_override", "image_auto", "image_override", "calibrated_at"]
    fields = [
        "embedding_space",
        ("text_auto", "text_override"),
        ("image_auto", "image_override"),
        "sample_products",
        "stats_shown",
        "calibrated_at",
    ]
    readonly_fields = ["embedding_space", "text_auto", "image_auto", "sample_products", "stats_shown", "calibrated_at"]

    def has_add_permission(self, request):
        return False  # rows come from calibration

    @admin.display(description=_("Embedding space"), ordering="embedding_space")
    def space(self, row: RelevanceCutoff) -> str:
        return space_id_shown(row.embedding_space)

    @admin.display(description="Stats")
    def stats_shown(self, row: RelevanceCutoff) -> str:
        """The percentiles the values came from (not the centroid's numbers)."""
        shown = {
            kind: {key: value for key, value in values.items() if key != "centroid"}
            for kind, values in (row.stats or {}).items()
            if isinstance(values, dict)
        }
        return json.dumps(shown, indent=1)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        row = self.get_object(request, unquote(object_id)) if object_id else None
        if row is None:
            return super().changeform_view(request, object_id, form_url, extra_context)
        if request.method == "POST" and "_preview" in request.POST:
            # Bound to what was typed, validated, shown with its effect: nothing is saved.
            saved = RelevanceCutoff.objects.get(pk=row.pk)  # validating the form writes into ``row``
            form_class = self.get_form(request, row, change=True)
            form = form_class(request.POST, instance=row)
            typed = {}
            if form.is_valid():
                typed = {"text": form.cleaned_data["text_override"], "image": form.cleaned_data["image_override"]}
            admin_form = helpers.AdminForm(
                form,
                list(self.get_fieldsets(request, row)),
                {},
                self.get_readonly_fields(request, row),
                model_admin=self,
            )
            context = {
                **self.admin_site.each_context(request),
                "title": f"Change {row}",
                "subtitle": None,
                "adminform": admin_form,
                "object_id": object_id,
                "original": row,
                "is_popup": False,
                "to_field": None,
                "media": self.media + admin_form.media,
                "inline_admin_formsets": [],
                "errors": helpers.AdminErrorList(form, []),
                "preserved_filters": self.get_preserved_filters(request),
                "preview": cutoff_preview(saved, typed) if form.is_valid() else None,
                **extra_context,
            }
            return self.render_change_form(request, context, add=False, change=True, obj=row, form_url=form_url)
        extra_context["preview"] = cutoff_preview(row, {})
        return super().changeform_view(request, object_id, form_url, extra_context)


def cutoff_preview(row: RelevanceCutoff, typed: dict) -> dict:
    """Result counts of sample searches at the cutoffs in force and at the typed ones."""
    columns = [("In force", None, None)]  # None: the space's cutoffs, as shoppers get them
    if typed and (typed.get("text") != row.text_override or typed.get("image") != row.image_override):
        text = typed["text"] if typed.get("text") is not None else row.text_auto
        image = typed["image"] if typed.get("image") is not None else row.image_auto
        columns.append(("With the typed values", text, image))
    rows = []
    for word in sample_queries():
        counts = [_count(SearchQuery(text=word, text_cutoff=text, limit=1)) for _, text, _ in columns]
        rows.append({"query": word, "counts": counts})
    for product in Product.objects.filter(is_active=True, images__state="indexed").distinct().order_by("pk")[:2]:
        counts = [
            _count(SearchQuery(like_product_id=product.pk, image_cutoff=image, limit=1)) for _, _, image in columns
        ]
        rows.append({"query": f"More like “{product.title}”", "counts": counts})
    return {"columns": [name for name, _, _ in columns], "rows": rows}


def _count(query: SearchQuery) -> str:
    try:
        page = catalog_search(query)
    except (SearchError, ServiceUnavailable) as exc:
        return f"– ({exc})"
    return f"{page.total}{'+' if page.total_is_capped else ''}"


def sample_queries() -> list[str]:
    """A few words of this catalog (its most common attribute values and categories), a
    two-word query, and a word it has no product for."""
    vocab = vocabulary()
    common = sorted(vocab.attribute_values, key=lambda term: -vocab.products.get(term, 0))
    words, keys = [], set()
    for term in common:  # the most common value of three different attributes
        term_keys = {key for key, _ in vocab.attribute_values[term]}
        if term_keys & keys:
            continue
        keys |= term_keys
        words.append(vocab.surface.get(term, term))
        if len(words) == 3:
            break
    if len(words) >= 2:
        words.append(f"{words[0]} {words[1]}")
    return [*words, "asdfgh"]


class TaggingProductAdmin(ProductAdmin):
    """The catalog's product admin with the zero-shot "Suggest tags" action."""

    actions = [*ProductAdmin.actions, "suggest_tags", "write_captions"]

    def get_actions(self, request):
        return actions_without_captions_when_off(super().get_actions(request))

    @admin.action(description="Write alt text and descriptions (generated, for review)")
    def write_captions(self, request, queryset):
        """For the photos without alt text and the products without a description."""
        captions_write_for(self, request, list(queryset.values_list("pk", flat=True)))

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


# Clearness in words: CLIP cosines of a photo and a few words sit in a narrow band (the demo
# model's best values score ~0.55); a tenth of that band between the best value and the next
# is a clear choice, under a fiftieth a close call.
CLEAR_MARGIN = 0.1
CLOSE_MARGIN = 0.02


@admin.register(TagSuggestion)
class TagSuggestionAdmin(admin.ModelAdmin):
    """Review the model's tag suggestions: accept (into the product's attributes) or reject."""

    list_display = ["photo", "product", "facet", "suggested_value", "clearness", "state", "current_value"]
    list_filter = ["state", "value__facet"]
    search_fields = ["product__title", "product__external_id", "value__value"]
    list_select_related = ["product", "value__facet"]
    actions = ["accept", "reject"]
    readonly_fields = ["product", "value", "clearness", "confidence", "state", "created_at", "decided_at"]
    # The close calls first: they are the ones to look at.
    ordering = [F("margin").asc(nulls_last=True), "-confidence", "id"]

    @admin.display(description=_("Clearness"), ordering="margin")
    def clearness(self, suggestion: TagSuggestion) -> str:
        """The margin over the runner-up value, in words and number (the probability is near
        1.0 for most suggestions: see embeddings/tagging.py)."""
        if suggestion.margin is None:
            return "–"
        if suggestion.margin >= CLEAR_MARGIN:
            words = _("clear")
        elif suggestion.margin >= CLOSE_MARGIN:
            words = _("likely")
        else:
            words = _("close call")
        return format_html(
            '<span class="tag-clearness" title="{}">{} ({})</span>',
            _("Cosine margin over the next best value"),
            words,
            f"{suggestion.margin:+.3f}",
        )

    def has_add_permission(self, request) -> bool:
        return False  # suggestions come from the model (`suggest_tags`, or the products' action)

    @admin.display(description="Photo")
    def photo(self, suggestion: TagSuggestion) -> str:
        image = suggestion.product.images.first()
        if image is None:
            return ""
        # The list's first column, so a link: its photo's alt text is the link's name.
        alt = _("Photo of %(title)s") % {"title": suggestion.product.title}
        return format_html('<img src="{}" alt="{}" class="vitrine-thumb small">', image.thumbnail_url, alt)

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


@admin.register(Synonym)
class SynonymAdmin(admin.ModelAdmin):
    """Words shoppers use for the same thing. Each row's words find each other's products
    (one way: the first word finds the others' products, not back). The list shows how
    many products have each word, so a word the catalog lacks stands out, and a link to
    try the row on the shop."""

    list_display = ["terms", "one_way", "is_active", "in_catalog", "try_it", "updated_at"]
    list_filter = ["is_active", "one_way"]
    search_fields = ["terms", "note"]
    fields = ["terms", "one_way", "is_active", "note", "in_catalog", "examples"]
    readonly_fields = ["in_catalog", "examples"]

    @admin.display(description="Products with each word")
    def in_catalog(self, synonym: Synonym) -> str:
        vocab = vocabulary()
        return format_html_join(
            ", ", "{} ({})", ((word, vocab.products.get(word_term(word), 0)) for word in synonym.words)
        )

    @admin.display(description="Try it")
    def try_it(self, synonym: Synonym) -> str:
        vocab = vocabulary()
        # The word the catalog has least: the one the row helps most.
        word = min(synonym.words, key=lambda w: vocab.products.get(word_term(w), 0), default="")
        if not word:
            return ""
        return format_html('<a href="{}?q={}" target="_blank">Search “{}”</a>', _shop_url(), word, word)

    @admin.display(description="Examples")
    def examples(self, synonym: Synonym) -> str:
        """What each word finds on the shop now (the first products, as shoppers see them)."""
        if not synonym.pk:
            return "Save to see what each word finds."
        lines = []
        for word in synonym.words[:6]:
            try:
                page = catalog_search(SearchQuery(text=word, limit=3))
            except (SearchError, ServiceUnavailable) as exc:
                lines.append((word, f"({exc})"))
                continue
            found = ", ".join(hit.product.title for hit in page.hits) or "nothing"
            lines.append((word, f"{page.total}{'+' if page.total_is_capped else ''} results: {found}"))
        return format_html_join("", "<p><strong>{}</strong>: {}</p>", lines)


def _shop_url() -> str:
    try:
        return reverse("search")
    except NoReverseMatch:  # a deployment without the shoppers' pages
        return "/"


from embeddings import admin_rules  # noqa: E402,F401 - registers the merchandising rules' admin and preview

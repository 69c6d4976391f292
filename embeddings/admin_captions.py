"""Generated alt text and descriptions in the admin: the products' and images' "Write alt
text and descriptions" action (offered only while VITRINE_CAPTION_API_URL is set), and the
review of the suggestions: accept (bulk, or one after editing it), reject."""

from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from catalog.admin import ProductImageAdmin
from catalog.models import ProductImage
from embeddings.captions import caption_accept, caption_reject, captions_queue, images_needing_captions
from embeddings.generative import captions_enabled
from embeddings.models import CaptionSuggestion

WRITE_ACTION = "write_captions"
WRITE_DESCRIPTION = "Write alt text and descriptions (generated, for review)"


def captions_write_for(model_admin, request, product_ids: list[int], image_ids: list[int] | None = None) -> None:
    """Queue captions for these products' images lacking text (only ``image_ids`` among
    them, when given) and say how many."""
    wanted = images_needing_captions(product_ids=product_ids, include_reviewed=True)
    if image_ids is not None:
        chosen = set(image_ids)
        wanted = [pk for pk in wanted if pk in chosen]
    if not wanted:
        model_admin.message_user(
            request,
            "Nothing to write: every selected photo has alt text, and every product a description.",
            messages.WARNING,
        )
        return
    captions_queue(wanted)
    model_admin.message_user(
        request,
        f"{len(wanted)} photo{'' if len(wanted) == 1 else 's'} queued for alt text and descriptions; "
        "review them under Caption suggestions.",
        messages.SUCCESS,
    )


def actions_without_captions_when_off(actions: dict) -> dict:
    if not captions_enabled():
        actions.pop(WRITE_ACTION, None)
    return actions


class CaptioningImageAdmin(ProductImageAdmin):
    """The catalog's image admin with "Write alt text and descriptions"."""

    actions = [*ProductImageAdmin.actions, WRITE_ACTION]
    list_display = [*ProductImageAdmin.list_display[:3], "alt_text", *ProductImageAdmin.list_display[3:]]

    def get_actions(self, request):
        return actions_without_captions_when_off(super().get_actions(request))

    @admin.action(description=WRITE_DESCRIPTION)
    def write_captions(self, request, queryset):
        rows = list(queryset.values_list("pk", "product_id"))
        captions_write_for(self, request, sorted({p for _, p in rows}), [pk for pk, _ in rows])


admin.site.unregister(ProductImage)
admin.site.register(ProductImage, CaptioningImageAdmin)


@admin.register(CaptionSuggestion)
class CaptionSuggestionAdmin(admin.ModelAdmin):
    """Review generated alt text and descriptions. A pending one can be edited, then saved
    and accepted; accepting writes the alt text onto the photo and the description into
    the product (and the keyword index); rejecting writes nothing."""

    change_form_template = "admin/embeddings/captionsuggestion/change_form.html"
    # The model is a filter and the date an order, not columns: beside the admin's two
    # sidebars at 1280 px, the texts side by side need the width.
    list_display = ["photo", "product", "state", "suggested", "current"]
    list_filter = ["state", "model"]
    search_fields = ["product__title", "product__external_id", "alt_en", "alt_zh", "description_en", "error"]
    list_select_related = ["product", "image"]
    actions = ["accept", "reject"]
    fields = [
        "photo_large",
        "product",
        "state",
        "error",
        ("alt_en", "alt_zh"),
        ("description_en", "description_zh"),
        "current_full",
        "model",
        ("created_at", "decided_at", "decided_by"),
    ]
    DECIDED_READONLY = ["alt_en", "alt_zh", "description_en", "description_zh"]

    def has_add_permission(self, request) -> bool:
        return False  # suggestions come from the model (the products' action, `manage.py caption`)

    def get_readonly_fields(self, request, obj=None):
        fixed = ["photo_large", "product", "state", "error", "current_full", "model", "created_at", "decided_at"]
        fixed.append("decided_by")
        if obj is not None and obj.state != CaptionSuggestion.State.PENDING:
            fixed += self.DECIDED_READONLY  # decided: edit the photo or product itself
        return fixed

    @admin.display(description="Photo")
    def photo(self, suggestion: CaptionSuggestion) -> str:
        # The list's first column, so a link: its photo's alt text is the link's name.
        return format_html(
            '<img src="{}" alt="Photo {} of {}" class="vitrine-thumb small">',
            suggestion.image.thumbnail_url,
            suggestion.image_id,
            suggestion.product.title,
        )

    @admin.display(description="Photo")
    def photo_large(self, suggestion: CaptionSuggestion) -> str:
        url = reverse("admin:catalog_productimage_change", args=[suggestion.image_id])
        return format_html(
            '<a href="{}"><img src="{}" alt="Photo {} (its page)" class="vitrine-thumb"></a>',
            url,
            suggestion.image.large_thumbnail_url,
            suggestion.image_id,
        )

    @admin.display(description="Suggested")
    def suggested(self, suggestion: CaptionSuggestion) -> str:
        if suggestion.state == CaptionSuggestion.State.FAILED:
            return format_html('<span class="errornote">{}</span>', suggestion.error)
        rows = [
            ("Alt", suggestion.alt_en),
            ("Alt 中文", suggestion.alt_zh),
            ("Description", _cut(suggestion.description_en)),
            ("Description 中文", _cut(suggestion.description_zh)),
        ]
        return format_html_join("", "<p><b>{}:</b> {}</p>", [(name, text) for name, text in rows if text])

    @admin.display(description="Replaces")
    def current(self, suggestion: CaptionSuggestion) -> str:
        """What accepting would overwrite: only the fields the suggestion carries (the
        change form shows all of the photo's and product's text)."""
        return _current(suggestion, cut=_cut, only_suggested=True)

    @admin.display(description="Current text")
    def current_full(self, suggestion: CaptionSuggestion) -> str:
        return _current(suggestion, cut=lambda text: text or "")

    def _decide(self, request, queryset, *, accept: bool) -> tuple[int, int]:
        done = skipped = 0
        for suggestion in queryset.select_related("product", "image"):
            decided = (caption_accept if accept else caption_reject)(suggestion, user=request.user)
            if not decided:
                skipped += 1
                continue
            done += 1
            self._log(request, suggestion, accept=accept)
        return done, skipped

    def _log(self, request, suggestion: CaptionSuggestion, *, accept: bool) -> None:
        if not accept:
            self.log_change(request, suggestion, "Rejected the generated caption.")
            return
        written = [
            name
            for name, text in (
                ("alt text", suggestion.alt_en),
                ("Chinese alt text", suggestion.alt_zh),
                ("description", suggestion.description_en),
                ("Chinese description", suggestion.description_zh),
            )
            if text.strip()
        ]
        message = f"Accepted the generated caption of photo {suggestion.image_id}: wrote {', '.join(written)}."
        self.log_change(request, suggestion, message)
        self.log_change(request, suggestion.product, message)  # the product's history shows it too

    @admin.action(description="Accept the selected suggestions (write them into the photos and products)")
    def accept(self, request, queryset):
        done, skipped = self._decide(request, queryset, accept=True)
        note = f" {skipped} failed ones skipped (nothing to accept)." if skipped else ""
        self.message_user(request, f"{done} captions accepted.{note}", messages.SUCCESS)

    @admin.action(description="Reject the selected suggestions")
    def reject(self, request, queryset):
        done, skipped = self._decide(request, queryset, accept=False)
        note = f" {skipped} accepted ones left as they are (edit the photo or product)." if skipped else ""
        self.message_user(request, f"{done} suggestions rejected.{note}", messages.SUCCESS)

    def response_change(self, request, obj):
        """ "Save and accept": the edited text is saved (above), then accepted."""
        if "_accept" in request.POST and obj.state == CaptionSuggestion.State.PENDING:
            obj.refresh_from_db()
            caption_accept(obj, user=request.user)
            self._log(request, obj, accept=True)
            self.message_user(request, "Caption accepted and written.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:embeddings_captionsuggestion_changelist"))
        if "_reject" in request.POST and obj.state == CaptionSuggestion.State.PENDING:
            caption_reject(obj, user=request.user)
            self._log(request, obj, accept=False)
            self.message_user(request, "Caption rejected.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:embeddings_captionsuggestion_changelist"))
        return super().response_change(request, obj)


# The list shows the start of a description (the change form has all of it): whole
# descriptions side by side pushed the list wider than a 1280-px screen.
LIST_DESCRIPTION_CHARS = 160


def _cut(text: str | None) -> str:
    return Truncator(text or "").chars(LIST_DESCRIPTION_CHARS)


def _current(suggestion: CaptionSuggestion, *, cut, only_suggested: bool = False) -> str:
    image, product = suggestion.image, suggestion.product
    rows = [
        ("Alt", suggestion.alt_en, image.alt_text),
        ("Alt 中文", suggestion.alt_zh, image.alt_text_zh),
        ("Description", suggestion.description_en, cut(product.description)),
        ("Description 中文", suggestion.description_zh, cut((product.attributes or {}).get("description_zh"))),
    ]
    if only_suggested:
        if suggestion.state == CaptionSuggestion.State.FAILED:
            return ""
        rows = [row for row in rows if row[1]]
    return format_html_join("", "<p><b>{}:</b> {}</p>", [(name, now or "–") for name, _, now in rows])

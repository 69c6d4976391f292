"""The merchandising rules' admin (pins, hides, boosts as rows of a rule) and the search
preview: a query, a photo or (with the image API set) a description to draw, shown as
shoppers get it, with each result's scores, the
rules that fired, where the relevance cutoff falls, and, side by side, what a changed
cutoff, a disabled rule or a draft pin would do. The preview saves nothing."""

from __future__ import annotations

from dataclasses import replace

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms.models import BaseInlineFormSet
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from catalog.intake import image_decode_rgb
from catalog.models import Product
from embeddings.generative import GenerativeError, imagine_enabled
from embeddings.imagine import imagine_photo
from embeddings.models import MerchandisingRule, RuleBoost, RuleHide, RulePin
from embeddings.query_photos import query_photo_load
from embeddings.search import SearchError, SearchQuery, catalog_search
from embeddings.search.rules import Rule, pin_conflicts, rules_saved, rules_touch_on_commit
from searchsite.errors import InputRejected, ServiceUnavailable

PREVIEW_RESULTS = 24  # a page of the shop


class PinFormSet(BaseInlineFormSet):
    def clean(self):
        super().clean()
        positions = [
            form.cleaned_data["position"]
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE") and form.cleaned_data.get("position")
        ]
        problems = pin_conflicts(self.instance, positions)
        if problems:
            raise ValidationError(problems)


class RulePinInline(admin.TabularInline):
    model = RulePin
    formset = PinFormSet
    raw_id_fields = ["product"]
    extra = 1


class RuleHideInline(admin.TabularInline):
    model = RuleHide
    raw_id_fields = ["product"]
    extra = 1


class RuleBoostInline(admin.TabularInline):
    model = RuleBoost
    extra = 1


@admin.register(MerchandisingRule)
class MerchandisingRuleAdmin(admin.ModelAdmin):
    """Rules for some searches: pin, hide, boost or bury products. Untick "enabled" to stop
    one without deleting it; its history (the admin's) says who changed what."""

    change_list_template = "admin/embeddings/merchandisingrule/change_list.html"
    list_display = ["name", "is_enabled", "match", "phrase", "starts_at", "ends_at", "effects", "preview_link"]
    list_filter = ["is_enabled", "match"]
    search_fields = ["name", "phrase", "note"]
    fields = ["name", "is_enabled", ("match", "phrase"), ("starts_at", "ends_at"), "note"]
    inlines = [RulePinInline, RuleHideInline, RuleBoostInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("pins", "hides", "boosts")

    @admin.display(description="Does")
    def effects(self, rule: MerchandisingRule) -> str:
        parts = [f"pins {len(rule.pins.all())}", f"hides {len(rule.hides.all())}"]
        parts += [f"{b.field} {b.key or b.value or ''} ×{b.factor:g}".replace("  ", " ") for b in rule.boosts.all()]
        return "; ".join(parts)

    @admin.display(description="Preview")
    def preview_link(self, rule: MerchandisingRule) -> str:
        if rule.match in (MerchandisingRule.Match.EXACT, MerchandisingRule.Match.CONTAINS) and rule.phrase:
            url = reverse("admin:embeddings_merchandisingrule_preview") + "?" + _query_string(q=rule.phrase)
            return format_html('<a href="{}">Preview “{}”</a>', url, rule.phrase)
        return ""

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)  # a queryset's delete skips the rows' delete()
        rules_touch_on_commit()

    def get_urls(self):
        preview = path(
            "preview/",
            self.admin_site.admin_view(self.preview_view),
            name="embeddings_merchandisingrule_preview",
        )
        return [preview, *super().get_urls()]

    def preview_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        data = request.POST if request.method == "POST" else request.GET
        form = PreviewForm(data or None, request.FILES or None)
        context = {
            **self.admin_site.each_context(request),
            "title": "Search preview",
            "opts": self.model._meta,
            "form": form,
            "preview": search_preview(form) if form.is_bound and form.is_valid() else None,
        }
        return TemplateResponse(request, "admin/embeddings/merchandisingrule/preview.html", context)


def _query_string(**params) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


class PreviewForm(forms.Form):
    q = forms.CharField(label="Words", required=False, max_length=500)
    photo = forms.FileField(label="Photo", required=False, help_text="JPEG, PNG or WebP")
    cutoff = forms.FloatField(
        label="What if the cutoff were",
        required=False,
        min_value=-1.0,
        max_value=1.0,
        help_text="A cosine similarity, -1 to 1 (empty: as in force)",
    )
    disable = forms.ModelChoiceField(
        label="What if this rule were disabled",
        queryset=MerchandisingRule.objects.filter(is_enabled=True),
        required=False,
    )
    pin_product = forms.IntegerField(label="What if this product id were pinned", required=False, min_value=1)
    pin_position = forms.IntegerField(label="at position", required=False, min_value=1, max_value=PREVIEW_RESULTS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if imagine_enabled():  # "Imagine it", as shoppers have it: only while the image API is set
            fields = list(self.fields.items())
            at = [name for name, _ in fields].index("photo") + 1
            imagine = forms.CharField(
                label="Or a description to draw",
                required=False,
                max_length=4000,
                help_text="Drawn by the image API (VITRINE_IMAGE_API_URL), then searched with like a photo; "
                "the same words reuse the picture",
            )
            self.fields = dict([*fields[:at], ("imagine", imagine), *fields[at:]])

    def clean(self):
        data = super().clean()
        imagine = (data.get("imagine") or "").strip()
        if not (data.get("q") or "").strip() and not data.get("photo") and not imagine:
            raise ValidationError(
                "Type words, choose a photo or describe one to draw."
                if "imagine" in self.fields
                else "Type words or choose a photo."
            )
        if imagine and data.get("photo"):
            raise ValidationError("Choose a photo or describe one to draw, not both.")
        if (data.get("pin_product") is None) != (data.get("pin_position") is None):
            raise ValidationError("A draft pin needs both a product id and a position.")
        product_id = data.get("pin_product")
        if product_id is not None and not Product.objects.filter(pk=product_id).exists():
            self.add_error("pin_product", f"No product with id {product_id}.")
        photo = data.get("photo")
        if photo:
            photo.seek(0)
            try:
                data["image"] = image_decode_rgb(content=photo.read())
            except InputRejected as exc:
                self.add_error("photo", str(exc))
        if imagine and not self.errors:  # the last check: a drawing costs seconds and budget
            try:
                imagined = imagine_photo(imagine)
            except GenerativeError as exc:
                self.add_error("imagine", exc.message)
            else:
                data["image"] = query_photo_load(imagined.token)
                data["imagined"] = imagined
        return data

    @property
    def asks_what_if(self) -> bool:
        data = self.cleaned_data
        return data.get("cutoff") is not None or data.get("disable") is not None or data.get("pin_product") is not None


def search_preview(form: PreviewForm) -> dict:
    """The results with the saved rules and cutoffs, and (when asked) with the form's
    changes: nothing is saved, the changes reach the engine as overrides."""
    data = form.cleaned_data
    base = SearchQuery(
        text=(data.get("q") or "").strip(),
        image=data.get("image"),
        relevant_only=False,  # the loosely related too: the cutoff line shows where shoppers stop
        limit=PREVIEW_RESULTS,
        facets=False,
    )
    columns = [_column("As saved", base)]
    if form.asks_what_if:
        rules = rules_saved()
        disabled = data.get("disable")
        if disabled is not None:
            rules = tuple(rule for rule in rules if rule.id != disabled.pk)
        if data.get("pin_product") is not None:
            draft = Rule(id=0, name="Draft pin", match="any", pins=((data["pin_position"], data["pin_product"]),))
            rules = (draft, *rules)  # first: its pin wins a tie
        cutoff = data.get("cutoff")
        what_if = SearchQuery(
            text=base.text,
            image=base.image,
            relevant_only=False,
            limit=PREVIEW_RESULTS,
            facets=False,
            rules_override=rules,
            text_cutoff=cutoff if cutoff is not None and base.kind in ("text", "image+text") else None,
            image_cutoff=cutoff if cutoff is not None and base.kind == "image" else None,
        )
        columns.append(_column("What if", what_if, before=columns[0]))
    return {
        "columns": columns,
        "differs": len(columns) == 2 and columns[0]["order"] != columns[1]["order"],
        "imagined": data.get("imagined"),
    }


def _column(name: str, query: SearchQuery, before: dict | None = None) -> dict:
    try:
        # What shoppers see (the relevant results, a buried one too, in their order), then,
        # below the line, the loosely related that "show more" would add.
        shopper = catalog_search(replace(query, relevant_only=True))
        page = catalog_search(query)
    except (SearchError, ServiceUnavailable) as exc:
        return {"name": name, "error": str(exc), "rows": [], "order": [], "fired": [], "cutoff": None}
    earlier = {product_id: number for number, product_id in enumerate(before["order"], 1)} if before else {}
    seen = {hit.product.pk for hit in shopper.hits}
    loose = [hit for hit in page.hits if hit.product.pk not in seen and not (hit.explain or {}).get("relevant", True)]
    hits = shopper.hits + loose[: max(0, query.limit - len(shopper.hits))]
    rows, line_drawn = [], False
    for number, hit in enumerate(hits, 1):
        explain = hit.explain or {}
        below = hit.product.pk not in seen
        rows.append(
            {
                "position": number,
                "hit": hit,
                "explain": explain,
                "effect": _effect(explain),
                "cutoff_above": below and not line_drawn,  # shoppers see the rows above the line
                "moved_from": earlier.get(hit.product.pk) if before and earlier.get(hit.product.pk) != number else None,
                "new": bool(before) and hit.product.pk not in earlier,
            }
        )
        line_drawn = line_drawn or below
    return {
        "name": name,
        "rows": rows,
        "order": [hit.product.pk for hit in hits],
        "fired": page.rules_fired,
        "cutoff": page.cutoff,
        "total": page.total,
        "shown_total": shopper.total,
        "kind": page.kind,
        "error": "",
    }


def _effect(explain: dict) -> str:
    names = ", ".join(rule["name"] for rule in explain.get("rules", []))
    parts = []
    if explain.get("pinned") is not None:
        parts.append(f"pinned at #{explain['pinned']}")
    if explain.get("factor", 1.0) != 1.0:
        parts.append(f"×{explain['factor']:g}")
    return f"{' '.join(parts)} ({names})" if parts else "–"

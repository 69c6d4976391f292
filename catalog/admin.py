"""The catalog's admin for merchandisers: products with their images inline, and images
(the feed imports' admin is in ``admin_feeds``, the attribute rows in ``admin_attributes``,
the bulk upload page in ``bulk_views``).

Every write goes through the catalog's services, as the API's do: the same validation, and
the index told by the services' signals (images added here are embedded, deletions take
their vectors with them).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import Prefetch
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from catalog import selectors, services, signals
from catalog.admin_attributes import ProductAdminForm
from catalog.admin_feeds import FeedImportPhotolessFilter
from catalog.intake import ImageRejected, image_accept
from catalog.models import Product, ProductImage

# The admin site's names. Here, with the catalog: it is what merchandisers come to the admin for.
admin.site.site_header = _("Vitrine administration")
admin.site.site_title = _("Vitrine admin")
admin.site.index_title = _("Catalog and search index")


def space_id_shown(space_id: str) -> str:
    """An embedding space id ("model|weights|dimension", the weights often a long path) in
    a short form people can read, the full id in its tooltip (and on the detail pages)."""
    if not space_id:
        return ""
    parts = space_id.rsplit("|", 2)
    if len(parts) != 3:
        return format_html('<span class="space-id">{}</span>', space_id)
    model, weights, dimension = parts
    weights_name = weights.rstrip("/").replace(":", "/").rsplit("/", 1)[-1]
    short = f"{model} · {weights_name} · {dimension}d" if weights_name else f"{model} · {dimension}d"
    return format_html('<span class="space-id" title="{}">{}</span>', space_id, short)


def photo_row_name(prefix: str) -> str:
    """The name a photo row's inputs are labelled with: a tabular inline's inputs have only
    the column headings, which assistive technology does not read as their labels."""
    index = prefix.rsplit("-", 1)[-1]
    if index.isdigit():
        return _("Photo %(number)s") % {"number": int(index) + 1}
    return _("New photo")  # the empty row the "Add another" link copies


class ProductImageInlineForm(forms.ModelForm):
    class Meta:
        model = ProductImage
        fields = ["file", "position", "alt_text", "alt_text_zh"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        row = photo_row_name(self.prefix)
        self.fields["file"].widget.attrs["aria-label"] = _("%(photo)s: file") % {"photo": row}
        self.fields["position"].widget.attrs["aria-label"] = _("%(photo)s: position") % {"photo": row}
        self.fields["alt_text"].widget.attrs["aria-label"] = _("%(photo)s: alt text") % {"photo": row}
        self.fields["alt_text_zh"].widget.attrs["aria-label"] = _("%(photo)s: alt text (Chinese)") % {"photo": row}

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        if self.instance.pk:  # existing images are not replaced in place
            return self.instance.file
        if upload is None:
            return upload
        try:
            self.accepted_content = image_accept(content=upload.read()).content
        except ImageRejected as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from None
        return upload


class ProductImageInlineFormSet(forms.BaseInlineFormSet):
    def add_fields(self, form, index):
        super().add_fields(form, index)
        if "DELETE" in form.fields:
            row = photo_row_name(form.prefix)
            form.fields["DELETE"].widget.attrs["aria-label"] = _("%(photo)s: delete") % {"photo": row}


class ProductImageInline(admin.TabularInline):
    model = ProductImage
    form = ProductImageInlineForm
    formset = ProductImageInlineFormSet
    extra = 1
    fields = ["thumbnail", "file", "position", "alt_text", "alt_text_zh", "state", "error", "dimensions", "space"]
    readonly_fields = ["thumbnail", "state", "error", "dimensions", "space"]

    @admin.display(description="Image")
    def thumbnail(self, image: ProductImage) -> str:
        if not image.pk:
            return ""
        return format_html('<img src="{}" alt="" class="vitrine-thumb">', image.thumbnail_url)

    @admin.display(description=_("Embedding space"))
    def space(self, image: ProductImage) -> str:
        return space_id_shown(image.embedding_space) if image.pk else ""

    @admin.display(description="Size")
    def dimensions(self, image: ProductImage) -> str:
        return f"{image.width}×{image.height}" if image.pk else ""


class HasPhotoFilter(admin.SimpleListFilter):
    title = _("has a photo")
    parameter_name = "has_photo"

    def lookups(self, request, model_admin):
        return [("yes", _("Yes (indexed)")), ("none_indexed", _("None indexed")), ("no", _("No photo"))]

    def queryset(self, request, queryset):
        return selectors.products_by_photo(queryset, self.value() or "")


class MissingTextFilter(admin.SimpleListFilter):
    """Products whose words for people are missing: what generated captions can fill."""

    title = _("missing text")
    parameter_name = "missing"

    def lookups(self, request, model_admin):
        return [("description", _("No description")), ("alt", _("A photo without alt text"))]

    def queryset(self, request, queryset):
        if self.value() == "description":
            return queryset.filter(description__regex=r"^\s*$")
        if self.value() == "alt":
            return queryset.filter(images__alt_text="").distinct()
        return queryset


class ValuesFilter(admin.AllValuesFieldListFilter):
    """The values of a text field, its empty value named (a blank link has no name to read)."""

    def choices(self, changelist):
        for choice in super().choices(changelist):
            if choice["display"] == "":
                choice["display"] = _("(none)")
            yield choice


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    form = ProductAdminForm
    list_display = [
        "photo",
        "title",
        "external_id",
        "brand",
        "category",
        "price",
        "currency",
        "is_active",
        "image_count",
    ]
    list_display_links = ["photo", "title"]
    list_filter = [
        "is_active",
        HasPhotoFilter,
        MissingTextFilter,
        FeedImportPhotolessFilter,
        ("category", ValuesFilter),
        ("brand", ValuesFilter),
    ]
    search_fields = ["title", "external_id", "brand"]
    inlines = [ProductImageInline]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    actions = ["reembed_images"]

    def get_queryset(self, request):
        # The photo and image count columns read the prefetched images: two queries a page.
        return super().get_queryset(request).prefetch_related(Prefetch("images", queryset=ProductImage.objects.all()))

    def view_on_site(self, product: Product) -> str | None:
        # The shop shows active products only: no link to a page that would be a 404.
        return product.get_absolute_url() if product.is_active else None

    @admin.display(description=_("Photo"))
    def photo(self, product: Product) -> str:
        images = product.images.all()  # prefetched, in position order
        if not images:
            return ""
        return format_html(
            '<img src="{}" alt="{}" class="vitrine-thumb small" loading="lazy">',
            images[0].thumbnail_url,
            _("Photo of %(title)s") % {"title": product.title},
        )

    @admin.display(description="Images")
    def image_count(self, product: Product) -> int:
        return len(product.images.all())

    def save_model(self, request, obj, form, change):
        """Through the services (validation, and the index told), not ``obj.save()``."""
        fields = {name: form.cleaned_data[name] for name in services.PRODUCT_FIELDS if name in form.cleaned_data}
        if change:
            changed = {name: value for name, value in fields.items() if name in form.changed_data}
            if "external_id" in form.changed_data:
                changed["external_id"] = form.cleaned_data["external_id"]
            stored = Product.objects.get(pk=obj.pk)
            saved = services.product_update(product=stored, **changed).product
        else:
            saved = services.product_upsert(external_id=form.cleaned_data["external_id"], **fields).product
        # The admin goes on with ``obj`` (inlines, history, messages): make it the saved row.
        for field in Product._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))
        obj._state.adding, obj._state.db = False, saved._state.db

    def save_formset(self, request, form, formset, change):
        if formset.model is not ProductImage:
            return super().save_formset(request, form, formset, change)
        # What the admin's change message (history) reads.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        # The new photos are queued together (one batch), once the page's transaction commits.
        with signals.deferred():
            for inline_form in formset.forms:
                if not inline_form.has_changed() or not hasattr(inline_form, "cleaned_data"):
                    continue
                if inline_form.cleaned_data.get("DELETE") and inline_form.instance.pk:
                    formset.deleted_objects.append(inline_form.instance)
                    services.image_delete(image=inline_form.instance)
                elif not inline_form.instance.pk and hasattr(inline_form, "accepted_content"):
                    result = services.image_create(
                        product=form.instance,
                        content=inline_form.accepted_content,
                        position=inline_form.cleaned_data.get("position"),
                    )
                    if result.is_created:
                        formset.new_objects.append(result.image)
                elif inline_form.instance.pk:
                    changed = []
                    if "position" in inline_form.changed_data:
                        inline_form.instance.save(update_fields=["position", "updated_at"])
                        changed.append("position")
                    texts = {
                        name: inline_form.cleaned_data[name]
                        for name in services.ALT_TEXT_FIELDS
                        if name in inline_form.changed_data
                    }
                    if texts:
                        changed += services.image_alt_text_set(image=inline_form.instance, **texts)
                    if changed:
                        formset.changed_objects.append((inline_form.instance, changed))

    def delete_model(self, request, obj):
        services.product_delete(product=obj)

    def delete_queryset(self, request, queryset):
        for product in queryset:
            self.delete_model(request, product)

    @admin.action(description="Re-embed the images of the selected products")
    def reembed_images(self, request, queryset):
        image_ids = list(ProductImage.objects.filter(product__in=queryset).values_list("pk", flat=True))
        services.images_reembed(image_ids=image_ids)
        self.message_user(request, f"{len(image_ids)} images queued for embedding.", messages.SUCCESS)


class HasErrorFilter(admin.SimpleListFilter):
    title = "error"
    parameter_name = "has_error"

    def lookups(self, request, model_admin):
        return [("yes", "With an error"), ("no", "Without")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(error="")
        if self.value() == "no":
            return queryset.filter(error="")
        return queryset


class DuplicateFilter(admin.SimpleListFilter):
    title = "duplicate"
    parameter_name = "duplicate"

    def lookups(self, request, model_admin):
        return [("yes", "Flagged as a duplicate"), ("kept", "Kept by a person")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(duplicate_of__isnull=False)
        if self.value() == "kept":
            return queryset.filter(duplicate_kept=True)
        return queryset


@admin.register(ProductImage)
class ProductImageAdmin(admin.ModelAdmin):
    list_display = ["id", "thumbnail", "product", "state", "error", "duplicate", "space", "updated_at"]
    list_filter = ["state", HasErrorFilter, DuplicateFilter, "embedding_space"]
    search_fields = ["product__title", "product__external_id", "sha256", "error"]
    readonly_fields = [f.name for f in ProductImage._meta.fields]
    actions = ["reembed", "keep_duplicates"]
    list_select_related = ["product", "duplicate_of__product"]

    @admin.display(description="Photo")
    def thumbnail(self, image: ProductImage) -> str:
        return format_html('<img src="{}" alt="" class="vitrine-thumb small">', image.thumbnail_url)

    @admin.display(description=_("Embedding space"), ordering="embedding_space")
    def space(self, image: ProductImage) -> str:
        return space_id_shown(image.embedding_space)

    @admin.display(description="Duplicate of")
    def duplicate(self, image: ProductImage) -> str:
        other = image.duplicate_of
        if other is None:
            return ""
        url = reverse("admin:catalog_productimage_change", args=[other.pk])
        return format_html(
            '{} duplicate of <a href="{}">image {}</a> ({}), cosine {}',
            image.duplicate_kind,
            url,
            other.pk,
            other.product.external_id,
            image.duplicate_score,
        )

    @admin.action(description="Keep: not a duplicate (clear the flag)")
    def keep_duplicates(self, request, queryset):
        count = services.images_duplicate_keep(image_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} images kept; they will not be flagged again.", messages.SUCCESS)

    def has_add_permission(self, request) -> bool:
        return False  # images are added on their product's page, through intake

    def delete_model(self, request, obj):
        services.image_delete(image=obj)

    def delete_queryset(self, request, queryset):
        for image in queryset:
            self.delete_model(request, image)

    @admin.action(description="Re-embed the selected images")
    def reembed(self, request, queryset):
        image_ids = list(queryset.values_list("pk", flat=True))
        services.images_reembed(image_ids=image_ids)
        self.message_user(request, f"{len(image_ids)} images queued for embedding.", messages.SUCCESS)

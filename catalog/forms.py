"""The search query as people send it (page and API), validated in one place."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from catalog.intake import ImageRejected, image_decode_rgb
from embeddings.index import IndexFilters
from embeddings.search import MAX_LIMIT


class SearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=500, strip=True, label="Search")
    image = forms.FileField(required=False, label="Search by photo")
    product_id = forms.IntegerField(required=False, min_value=1)
    image_id = forms.IntegerField(required=False, min_value=1)
    category = forms.MultipleChoiceField(required=False)
    brand = forms.MultipleChoiceField(required=False)
    price_min = forms.DecimalField(required=False, min_value=0, max_digits=12, decimal_places=2)
    price_max = forms.DecimalField(required=False, min_value=0, max_digits=12, decimal_places=2)
    include_inactive = forms.BooleanField(required=False)
    limit = forms.IntegerField(required=False, min_value=1, max_value=MAX_LIMIT)
    offset = forms.IntegerField(required=False, min_value=0, max_value=10_000)

    def __init__(self, *args, categories: list[str] | None = None, brands: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        # None: accept any value (the API); a list: the values the page offers.
        self._restrict_choices("category", categories)
        self._restrict_choices("brand", brands)

    def _restrict_choices(self, name: str, values: list[str] | None) -> None:
        field = self.fields[name]
        if values is None:
            field.valid_value = lambda value: True  # type: ignore[method-assign]
        field.choices = [(v, v) for v in values or []]

    def clean_image(self):
        upload = self.cleaned_data.get("image")
        if not upload:
            return None
        limit = settings.VITRINE_MAX_IMAGE_BYTES
        if upload.size > limit:
            raise ValidationError(
                f"The file is {upload.size / 1048576:.1f} MB; the limit is {limit / 1048576:.1f} MB "
                "(VITRINE_MAX_IMAGE_BYTES).",
                code="file_too_large",
            )
        try:
            return image_decode_rgb(content=upload.read())
        except ImageRejected as exc:
            raise ValidationError(exc.message, code=exc.code) from None

    def clean(self):
        data = super().clean()
        low, high = data.get("price_min"), data.get("price_max")
        if low is not None and high is not None and low > high:
            raise ValidationError({"price_max": "The maximum price is below the minimum price."})
        sources = [name for name in ("q", "image", "product_id", "image_id") if data.get(name)]
        if len(sources) > 1:
            raise ValidationError(f"Search by one thing at a time (got {', '.join(sources)}).", code="several_queries")
        return data

    @property
    def has_query(self) -> bool:
        data = self.cleaned_data
        return any(data.get(name) for name in ("q", "image", "product_id", "image_id"))

    def search_kwargs(self, *, default_limit: int) -> dict:
        data = self.cleaned_data
        return {
            "text": data.get("q") or "",
            "image": data.get("image"),
            "like_product_id": data.get("product_id"),
            "like_image_id": data.get("image_id"),
            "filters": IndexFilters(
                categories=tuple(data.get("category") or ()),
                brands=tuple(data.get("brand") or ()),
                price_min=data.get("price_min"),
                price_max=data.get("price_max"),
                active_only=not data.get("include_inactive"),
            ),
            "limit": data.get("limit") or default_limit,
            "offset": data.get("offset") or 0,
        }

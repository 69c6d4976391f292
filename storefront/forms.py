"""The search page's query, validated in one place (the API has its serializers)."""

from __future__ import annotations

import copy
import functools

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

# --- The shoppers' page ---------------------------------------------------------------------

# Query parameters of the search page; a product attribute offered as a facet uses its
# own name unless it collides with one of these.
PAGE_PARAMS = ("q", "photo", "similar", "plus", "minus", "category", "brand", "price_min", "price_max")
PAGE_PARAMS += ("sort", "page", "loose", "exact", "partial", "crop", "imagined")
MAX_PAGE = 1000
MAX_ID = 2**63 - 1  # the database's largest id; beyond it SQLite overflows


def facet_param(attribute: str) -> str:
    return f"attr_{attribute}" if attribute in PAGE_PARAMS else attribute


class ShopperSearchForm(forms.Form):
    """The search page's state, all of it in the URL (GET)."""

    q = forms.CharField(required=False, max_length=500, strip=True, label="Search")
    photo = forms.RegexField(required=False, regex=r"^[0-9a-f]{32}$")
    # The words an "Imagine it" photo was drawn for, shown beside it (with a photo only).
    imagined = forms.CharField(required=False, max_length=4000, strip=True)
    # The region of the photo to search with: x,y,width,height as fractions of its size.
    crop = forms.CharField(required=False, max_length=40)
    similar = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    plus = forms.TypedMultipleChoiceField(required=False, coerce=int)
    minus = forms.TypedMultipleChoiceField(required=False, coerce=int)
    category = forms.MultipleChoiceField(required=False)
    brand = forms.MultipleChoiceField(required=False)
    price_min = forms.DecimalField(required=False, min_value=0, max_digits=12, decimal_places=2)
    price_max = forms.DecimalField(required=False, min_value=0, max_digits=12, decimal_places=2)
    sort = forms.ChoiceField(required=False, choices=[])
    page = forms.IntegerField(required=False, min_value=1, max_value=MAX_PAGE)
    # How many bands of loosely related products to show (VITRINE_LOOSE_BAND each).
    loose = forms.IntegerField(required=False, min_value=0, max_value=100)
    # Search the words as typed ("Search instead for …"): no spelling correction.
    exact = forms.BooleanField(required=False)

    def __init__(self, data, *, sorts: dict[str, str], attributes: list[str]):
        self.base_fields = _shopper_fields(tuple(sorts.items()), tuple(attributes))
        super().__init__(data)
        self.attributes = attributes

    def clean_plus(self):
        return _product_ids(self.cleaned_data.get("plus"))

    def clean_minus(self):
        return _product_ids(self.cleaned_data.get("minus"))

    def clean_crop(self):
        return crop_parse(self.cleaned_data.get("crop") or "")

    def clean(self):
        data = super().clean()
        low, high = data.get("price_min"), data.get("price_max")
        # A range typed the wrong way round is what the shopper meant the right way round.
        if low is not None and high is not None and low > high:
            data["price_min"], data["price_max"] = high, low
        if data.get("similar") and (data.get("q") or data.get("photo")):
            raise ValidationError("“More like this” cannot be combined with words or a photo.", code="several_queries")
        return data

    @property
    def has_query(self) -> bool:
        data = self.cleaned_data
        return bool(data.get("q") or data.get("photo") or data.get("similar"))

    def attribute_filters(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        data = self.cleaned_data
        return tuple(
            (attribute, tuple(data.get(facet_param(attribute)) or ()))
            for attribute in self.attributes
            if data.get(facet_param(attribute))
        )


class _SharedFields(dict):
    """Fields that every form made with the same options shares: Django deep-copies a
    form's ``base_fields`` for each form (so that one form may change its own), which
    costs the search page more than validating the query. Nothing changes these once
    they are made (``_shopper_fields``)."""

    def __deepcopy__(self, memo):
        return dict(self)


@functools.lru_cache(maxsize=16)
def _shopper_fields(sorts: tuple[tuple[str, str], ...], attributes: tuple[str, ...]) -> _SharedFields:
    """The search form's fields for these sorts and facet attributes, made once."""
    fields = copy.deepcopy(ShopperSearchForm.base_fields)
    fields["sort"].choices = list(sorts)
    for name in ("plus", "minus", "category", "brand"):
        # Any value: a filter value that matches nothing gives no results, not an error.
        fields[name].valid_value = _any_value  # type: ignore[method-assign]
    for attribute in attributes:
        field = forms.MultipleChoiceField(required=False)
        field.valid_value = _any_value  # type: ignore[method-assign]
        fields[facet_param(attribute)] = field
    return _SharedFields(fields)


def crop_parse(text: str) -> tuple[float, float, float, float] | None:
    """``x,y,w,h`` (fractions of the photo's width and height) → a box inside the photo at
    least 2 % on each side; "" → None."""
    if not text:
        return None
    try:
        x, y, w, h = (float(part) for part in text.split(","))
    except ValueError:
        raise ValidationError(_("The part of the photo to search could not be read."), code="bad_crop") from None
    if not all(0 <= v <= 1 for v in (x, y, w, h)) or w < 0.02 or h < 0.02 or x + w > 1.0001 or y + h > 1.0001:
        raise ValidationError(_("The part of the photo to search could not be read."), code="bad_crop")
    return (x, y, min(w, 1 - x), min(h, 1 - y))


def crop_text(box) -> str:
    return ",".join(f"{v:.4f}".rstrip("0").rstrip(".") or "0" for v in box) if box else ""


def _any_value(value) -> bool:
    return True


def _product_ids(values) -> list[int]:
    values = list(dict.fromkeys(values or ()))
    if any(value < 1 or value > MAX_ID for value in values):
        raise ValidationError("Product ids are positive numbers.")
    if len(values) > 20:
        raise ValidationError("At most 20 products can be liked or hidden at once.")
    return values


class PhotoSearchForm(forms.Form):
    """A photo to search with: a file, a camera shot, or the address of an image."""

    image = forms.FileField(required=False, label="Choose a photo")
    camera = forms.FileField(required=False, label="Take a photo")
    image_url = forms.URLField(required=False, max_length=2000, assume_scheme="https", label="Image address")
    crop = forms.CharField(required=False, max_length=40)

    def clean_crop(self):
        return crop_parse(self.cleaned_data.get("crop") or "")

    def clean(self):
        data = super().clean()
        given = [name for name in ("image", "camera", "image_url") if data.get(name)]
        if not given and not self.errors:
            raise ValidationError(_("Choose a photo, take one, or paste the address of an image."), code="no_photo")
        if len(given) > 1:
            raise ValidationError(_("Search with one photo at a time."), code="several_photos")
        return data

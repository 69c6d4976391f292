"""Rules a product's fields obey wherever it is written from (API, admin, feeds, commands):
the model's fields run them in ``full_clean()``, which every catalog service calls."""

from __future__ import annotations

import json
import math

from django.core.exceptions import ValidationError

MAX_ATTRIBUTES = 50
MAX_ATTRIBUTES_BYTES = 10_000
MAX_ATTRIBUTE_NAME = 64
# The product's own sub-resources in the API: an id ending so could not be addressed on its own.
RESERVED_ID_ENDINGS = ("/images", "/similar")


def external_id_problem(external_id: str) -> str:
    """Why this cannot be a product's external id, or "" when it can."""
    if not external_id or len(external_id) > 255 or any(ord(ch) < 32 for ch in external_id):
        return "external_id is 1 to 255 characters, without control characters."
    if external_id.endswith(RESERVED_ID_ENDINGS):
        return "external_id cannot end with /images or /similar (the product's images and similar products)."
    return ""


def external_id_validate(value: str) -> None:
    problem = external_id_problem(value)
    if problem:
        raise ValidationError(problem, code="bad_external_id")


CODE = "bad_attributes"


def attributes_validate(value) -> None:
    """Flat string keys; values a string, finite number, boolean or list of strings; small;
    no NUL characters (PostgreSQL's jsonb cannot hold them).

    The code is not "invalid": a ModelForm (the admin) would show its own "Enter a valid
    JSON." instead of the message."""
    if not isinstance(value, dict):
        raise ValidationError("Must be an object.", code=CODE)
    if len(value) > MAX_ATTRIBUTES:
        raise ValidationError(f"At most {MAX_ATTRIBUTES} attributes.", code=CODE)
    for key, item in value.items():
        if not isinstance(key, str) or not key or len(key) > MAX_ATTRIBUTE_NAME:
            raise ValidationError(f"Attribute names are 1 to {MAX_ATTRIBUTE_NAME} characters.", code=CODE)
        is_scalar = isinstance(item, (str, int, bool)) or (isinstance(item, float) and math.isfinite(item))
        is_list = isinstance(item, list) and all(isinstance(v, str) for v in item)
        if not (is_scalar or is_list or item is None):
            raise ValidationError(f"{key!r}: use a string, number, boolean or a list of strings.", code=CODE)
        strings = [key, *(item if is_list else [item] if isinstance(item, str) else [])]
        if any("\x00" in text for text in strings):
            raise ValidationError("Attributes cannot contain NUL characters.", code=CODE)
    if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_ATTRIBUTES_BYTES:
        raise ValidationError(f"Attributes may be at most {MAX_ATTRIBUTES_BYTES:,} bytes of JSON.", code=CODE)

"""Products in the shopper's language.

A shop sends a product's translations as attributes with a language suffix, through the
feed (a column per key) and the API (``attributes``) alike::

    {"colour": "red", "colour_zh": "红色", "title_zh": "红色条纹杯子", "description_zh": "…"}

``title_<suffix>``, ``description_<suffix>`` and ``category_<suffix>`` translate those
fields; ``<attribute>_<suffix>`` translates that attribute's value. The suffix of each
interface language is in ``LANGUAGE_SUFFIXES`` (``zh`` for 简体中文). Translations are
searchable words like any attribute value; the pages show them in place of the originals
and never list them as facts of their own.
"""

from __future__ import annotations

from django.utils import translation

# Interface language (settings.LANGUAGES) → the suffix of the catalog's translated fields.
LANGUAGE_SUFFIXES = {"zh-hans": "zh"}


def translation_suffixes() -> tuple[str, ...]:
    return tuple(dict.fromkeys(LANGUAGE_SUFFIXES.values()))


def suffix_for(language: str | None = None) -> str | None:
    """The suffix of the given language (default: the active one); None: the originals."""
    language = (language or translation.get_language() or "").lower()
    return LANGUAGE_SUFFIXES.get(language)


def is_translated_description(key: str) -> bool:
    """``description_<suffix>``: prose, indexed as the description is (not an attribute value)."""
    return key in {f"description_{suffix}" for suffix in translation_suffixes()}


def is_translation_key(key: str) -> bool:
    return any(key.endswith(f"_{suffix}") and len(key) > len(suffix) + 1 for suffix in translation_suffixes())


def localized(product, field: str, language: str | None = None) -> str:
    """A product's title, description or category in the language, else as written."""
    original = getattr(product, field) or ""
    suffix = suffix_for(language)
    attributes = product.attributes if isinstance(product.attributes, dict) else {}
    if suffix:
        value = attributes.get(f"{field}_{suffix}")
        if isinstance(value, str) and value.strip():
            return value
    return original


def localized_value(attributes: dict, key: str, value, language: str | None = None):
    """An attribute's value in the language (a list item by item positions is not
    translated: the translation of a list is a list)."""
    suffix = suffix_for(language)
    if suffix and isinstance(attributes, dict):
        translated = attributes.get(f"{key}_{suffix}")
        if translated not in (None, "", []):
            return translated
    return value


def localized_attributes(product, language: str | None = None) -> list[tuple[str, object]]:
    """The product's attributes as (key, value), translation keys left out, each value in
    the language where the product has it (``<key>_<suffix>``), else as written."""
    attributes = product.attributes if isinstance(product.attributes, dict) else {}
    return [
        (str(key), localized_value(attributes, str(key), value, language))
        for key, value in attributes.items()
        if not is_translation_key(str(key))
    ]


def localized_alt(image, language: str | None = None) -> str:
    """An image's alt text in the language (``alt_text_<suffix>``), else the English one;
    empty when it has none."""
    suffix = suffix_for(language)
    if suffix:
        translated = getattr(image, f"alt_text_{suffix}", "")
        if translated:
            return translated
    return image.alt_text or ""

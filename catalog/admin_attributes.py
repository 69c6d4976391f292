"""A product's attributes edited in the admin as rows of name and value, not as raw JSON.

A name given on several rows holds a list of their values (``tags: gift`` and ``tags:
ceramic`` → ``["gift", "ceramic"]``). A hidden input carries the kinds of the values the
product had (list, number, boolean, null), so that saving the page changes nothing that
was not edited: a one-value list stays a list, a number a number. The page works without
JavaScript (blank rows to fill); static/vitrine/admin.js adds an "Add a row" button.
The catalog's validator (catalog/validators.py) runs on the result, as for every write.
"""

from __future__ import annotations

import json

from django import forms
from django.db import models
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from catalog.models import Product
from catalog.validators import CODE, MAX_ATTRIBUTE_NAME

BLANK_ROWS = 3  # to fill without JavaScript (with it, "Add a row" makes more)


def _kind(value) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null"
    return "string"


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def attributes_to_rows(attributes: dict) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The rows (name, value as text) showing these attributes, and the kinds of the
    values that are not strings. Rows come in name order (a translation beside its
    original: colour, colour_zh): PostgreSQL's jsonb keeps no order of its own."""
    rows: list[tuple[str, str]] = []
    kinds: dict[str, str] = {}
    for name, value in sorted((attributes or {}).items(), key=lambda item: (str(item[0]).lower(), str(item[0]))):
        kind = _kind(value)
        if kind != "string":
            kinds[name] = kind
        if kind == "list":
            rows += [(name, _text(item)) for item in value] or [(name, "")]
        else:
            rows.append((name, _text(value)))
    return rows, kinds


def _typed(text: str, kind: str | None):
    """A single value as the kind it had, when the text still reads as one."""
    if kind == "number":
        try:
            number = json.loads(text)
        except ValueError:
            return text
        return number if isinstance(number, (int, float)) and not isinstance(number, bool) else text
    if kind == "boolean" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if kind == "null" and not text:
        return None
    return text


def attributes_from_rows(rows: list[tuple[str, str]], kinds: dict[str, str]) -> dict:
    values: dict[str, list[str]] = {}
    for name, text in rows:
        name, text = name.strip(), text.strip()
        if not name:
            if text:
                message = _("The value “%(value)s” has no name: give it one, or empty its row.")
                raise forms.ValidationError(message, code=CODE, params={"value": text})
            continue
        values.setdefault(name, []).append(text)
    attributes: dict = {}
    for name, texts in values.items():
        kind = kinds.get(name)
        if kind == "list" or len(texts) > 1:
            attributes[name] = [text for text in texts if text]
        else:
            attributes[name] = _typed(texts[0], kind)
    return attributes


class AttributesWidget(forms.Widget):
    """Rows of name and value inputs, each with its own accessible name."""

    def value_from_datadict(self, data, files, name):
        names = data.getlist(f"{name}-name") if hasattr(data, "getlist") else []
        texts = data.getlist(f"{name}-value") if hasattr(data, "getlist") else []
        try:
            kinds = json.loads(data.get(f"{name}-kinds") or "{}")
        except ValueError:
            kinds = {}
        return {"rows": list(zip(names, texts, strict=False)), "kinds": kinds if isinstance(kinds, dict) else {}}

    def value_omitted_from_data(self, data, files, name):
        return f"{name}-name" not in data and f"{name}-kinds" not in data

    def id_for_label(self, id_):
        return f"{id_}-name-0" if id_ else None

    def render(self, name, value, attrs=None, renderer=None):
        if isinstance(value, dict) and "rows" in value and "kinds" in value:  # as posted (a page with errors)
            rows, kinds = [tuple(row) for row in value["rows"]], value["kinds"]
        else:
            rows, kinds = attributes_to_rows(value if isinstance(value, dict) else {})
        rows = [*rows, *[("", "")] * BLANK_ROWS]
        id_ = (attrs or {}).get("id") or self.attrs.get("id") or f"id_{name}"
        name_label = str(_("Attribute %(number)s: name"))
        value_label = str(_("Attribute %(number)s: value"))
        body = format_html_join(
            "",
            '<tr><td><input type="text" name="{}-name" id="{}-name-{}" value="{}" maxlength="{}" aria-label="{}"></td>'
            '<td><input type="text" name="{}-value" id="{}-value-{}" value="{}" aria-label="{}"></td></tr>',
            (
                (
                    name,
                    id_,
                    index,
                    row_name,
                    MAX_ATTRIBUTE_NAME,
                    name_label % {"number": index + 1},
                    name,
                    id_,
                    index,
                    text,
                    value_label % {"number": index + 1},
                )
                for index, (row_name, text) in enumerate(rows)
            ),
        )
        return format_html(
            '<div class="attributes-editor" data-name-label="{}" data-value-label="{}">'
            '<input type="hidden" name="{}-kinds" value="{}">'
            '<table class="attributes-rows"><thead><tr><th scope="col">{}</th><th scope="col">{}</th></tr></thead>'
            "<tbody>{}</tbody></table>"
            '<button type="button" class="button attributes-add" hidden>{}</button></div>',
            name_label.replace("%(number)s", "{number}"),
            value_label.replace("%(number)s", "{number}"),
            name,
            json.dumps(kinds, ensure_ascii=False),
            _("Name"),
            _("Value"),
            body,
            _("Add a row"),
        )


class AttributesField(forms.Field):
    widget = AttributesWidget
    default_error_messages = {"invalid": _("The attributes could not be read.")}

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault(
            "help_text",
            _(
                "Facts shoppers filter on, one per row: a name (colour) and its value (red). To give a name "
                "several values (a list, such as tags), add a row per value with the same name. To remove an "
                "attribute, empty its row."
            ),
        )
        super().__init__(**kwargs)

    def to_python(self, value):
        if value in (None, ""):
            return {}
        if isinstance(value, dict) and "rows" in value and "kinds" in value:
            return attributes_from_rows(value["rows"], value["kinds"])
        if isinstance(value, dict):
            return value
        raise forms.ValidationError(self.error_messages["invalid"], code="invalid")


def _formfield(field, **kwargs):
    # As the admin makes them (ProductAdmin.formfield_overrides): URLs without a scheme are https.
    if isinstance(field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return field.formfield(**kwargs)


class ProductAdminForm(forms.ModelForm):
    attributes = AttributesField(label=_("Attributes"))

    class Meta:
        model = Product
        fields = [
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
        ]
        formfield_callback = _formfield

"""Reading product feeds: CSV, TSV (Google Merchant Center's text feed), JSON Lines, and
Google Merchant Center RSS/XML, with product fields and image URLs.

:func:`feed_read` turns a file into :class:`FeedRow` values, each with its own problems, so
one bad row never stops the others. Nothing here writes; ``catalog.feeds.importer`` does.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from defusedxml import ElementTree as SafeElementTree
from defusedxml.common import DefusedXmlException

from catalog.translations import translation_suffixes
from searchsite.errors import InputRejected

FORMATS = ("csv", "tsv", "jsonl", "xml")
GOOGLE_NS = "http://base.google.com/ns/1.0"
MAX_IMAGES_PER_PRODUCT = 20

# Column names (lower case, without a "g:" prefix) -> Vitrine's field.
ALIASES = {
    "id": "external_id",
    "external_id": "external_id",
    "sku": "external_id",
    "title": "title",
    "name": "title",
    "description": "description",
    "brand": "brand",
    "category": "category",
    "product_type": "product_type",
    "google_product_category": "google_product_category",
    "price": "price",
    "currency": "currency",
    "link": "url",
    "url": "url",
    "image_link": "image",
    "image_url": "image",
    "image": "image",
    "additional_image_link": "more_images",
    "additional_image_links": "more_images",
    "images": "more_images",
    "image_urls": "more_images",
    "is_active": "is_active",
    "active": "is_active",
    "attributes": "attributes",
    "tags": "tags",
}
# Merchant Center attributes kept as product attributes (facets) under these keys.
ATTRIBUTE_ALIASES = {
    "color": "colour",
    "colour": "colour",
    "pattern": "pattern",
    "material": "material",
    "size": "size",
    "gender": "gender",
    "age_group": "age_group",
}


class FeedError(InputRejected):
    """The feed as a whole cannot be read."""


@dataclass
class FeedRow:
    number: int  # line (CSV, TSV, JSON Lines) or item (XML), from 1
    external_id: str = ""
    fields: dict = field(default_factory=dict)
    image_urls: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def feed_format(name: str, content: bytes) -> str:
    """The format from the file name, else from the first bytes."""
    suffix = Path(name).suffix.lower()
    by_suffix = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".xml": "xml"}
    if suffix in by_suffix:
        return by_suffix[suffix]
    head = content[:2048].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return "xml"
    if head.startswith(b"{"):
        return "jsonl"
    first_line = head.split(b"\n", 1)[0]
    return "tsv" if b"\t" in first_line else "csv"


def feed_read(content: bytes, *, format: str) -> Iterator[FeedRow]:  # noqa: A002 - the feed's format
    if format not in FORMATS:
        raise FeedError("unknown_format", f"Unknown feed format {format!r}; use one of {', '.join(FORMATS)}.")
    if format == "xml":
        yield from _xml_rows(content)
        return
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FeedError("bad_encoding", f"The feed is not UTF-8 text (byte {exc.start}).") from None
    if format == "jsonl":
        yield from _jsonl_rows(text)
    else:
        yield from _table_rows(text, delimiter="\t" if format == "tsv" else ",")


def _table_rows(text: str, *, delimiter: str) -> Iterator[FeedRow]:
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    if not reader.fieldnames:
        raise FeedError("empty_feed", "The feed is empty: no header line.")
    for number, record in enumerate(reader, start=1):
        extra = record.pop(None, None)
        row = _row_from_mapping(number, {k: v for k, v in record.items() if k is not None})
        if extra:
            row.problems.append(f"the line has {len(extra)} more values than the header has columns")
        yield row


def _jsonl_rows(text: str) -> Iterator[FeedRow]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield FeedRow(number=number, problems=[f"not JSON ({exc.msg} at column {exc.colno})"])
            continue
        if not isinstance(record, dict):
            yield FeedRow(number=number, problems=["each line must be a JSON object"])
            continue
        yield _row_from_mapping(number, record)


def _xml_rows(content: bytes) -> Iterator[FeedRow]:
    try:
        root = SafeElementTree.fromstring(content)
    except DefusedXmlException as exc:
        raise FeedError("unsafe_xml", f"The XML feed uses entities or DTDs, which are refused ({exc}).") from None
    except SafeElementTree.ParseError as exc:
        raise FeedError("bad_xml", f"The XML feed cannot be parsed: {exc}.") from None
    items = root.findall("./channel/item") or root.findall("{http://www.w3.org/2005/Atom}entry")
    for number, item in enumerate(items, start=1):
        record: dict = {}
        for child in item:
            tag = child.tag.split("}", 1)[-1] if child.tag.startswith("{") else child.tag
            value = (child.text or "").strip()
            if tag == "additional_image_link":
                record.setdefault(tag, []).append(value)
            elif tag not in record:
                record[tag] = value
        yield _row_from_mapping(number, record)


def _translation_key(key: str) -> str | None:
    """A translation column (catalog.translations): ``title_zh``, ``description_zh``,
    ``category_zh``, ``color_zh`` / ``colour_zh`` or any ``<attribute>_zh`` → the attribute
    key it is kept under; None for other columns."""
    for suffix in translation_suffixes():
        base = key.removesuffix(f"_{suffix}")
        if base != key and base:
            base = {"name": "title", **ATTRIBUTE_ALIASES}.get(base, base)
            return f"{base}_{suffix}" if base and re.fullmatch(r"[a-z][a-z0-9_]*", base) else None
    return None


def _row_from_mapping(number: int, record: dict) -> FeedRow:
    row = FeedRow(number=number)
    values: dict = {}
    attributes: dict = {}
    for raw_key, value in record.items():
        key = str(raw_key).strip().lower().removeprefix("g:")
        if key in ALIASES:
            values[ALIASES[key]] = value
        elif key in ATTRIBUTE_ALIASES and _text(value):
            attributes[ATTRIBUTE_ALIASES[key]] = _text(value)
        elif _text(value) and (translated := _translation_key(key)):
            attributes[translated] = _text(value)
    row.external_id = _text(values.get("external_id"))
    if not row.external_id:
        row.problems.append("no id (a column id, external_id or sku)")
    elif len(row.external_id) > 255:
        row.problems.append("the id is longer than 255 characters")
    title = _text(values.get("title"))
    if not title:
        row.problems.append("no title")
    fields: dict = {"title": title[:500]}
    for name in ("description", "brand", "url"):
        if name in values:
            fields[name] = _text(values[name])
    category = _text(values.get("category")) or _last_segment(values.get("product_type"))
    category = category or _last_segment(values.get("google_product_category"))
    if category or "category" in values:
        fields["category"] = category[:200]
    if "price" in values:
        price, currency, problem = _price(values.get("price"), values.get("currency"))
        if problem:
            row.problems.append(problem)
        else:
            fields["price"] = price
            if currency:
                fields["currency"] = currency
    elif "currency" in values:
        fields["currency"] = _text(values["currency"]).upper()[:3]
    if "is_active" in values:
        active = _boolean(values["is_active"])
        if active is None:
            row.problems.append(f"active must be true or false, not {values['is_active']!r}")
        else:
            fields["is_active"] = active
    given_attributes = values.get("attributes")
    if isinstance(given_attributes, str) and given_attributes.strip().startswith("{"):
        try:  # a CSV/TSV cell holding JSON
            given_attributes = json.loads(given_attributes)
        except json.JSONDecodeError:
            pass
    if isinstance(given_attributes, dict):
        attributes = {**given_attributes, **attributes}
    elif given_attributes not in (None, ""):
        row.problems.append("attributes must be a JSON object")
    tags = values.get("tags")
    if tags not in (None, ""):
        attributes["tags"] = [t for t in (tags if isinstance(tags, list) else str(tags).split(",")) if str(t).strip()]
        attributes["tags"] = [str(t).strip() for t in attributes["tags"]]
    if attributes or "attributes" in values or "tags" in values:
        fields["attributes"] = attributes
    urls = [_text(values.get("image"))] if _text(values.get("image")) else []
    more = values.get("more_images")
    if isinstance(more, list):
        urls += [_text(u) for u in more]
    elif _text(more):
        urls += [u.strip() for u in str(more).split(",")]
    row.image_urls = list(dict.fromkeys(u for u in urls if u))[:MAX_IMAGES_PER_PRODUCT]
    row.fields = fields
    return row


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _last_segment(value) -> str:
    text = _text(value)
    return text.split(">")[-1].strip() if text else ""


def _boolean(value) -> bool | None:
    if isinstance(value, bool):
        return value
    text = _text(value).lower()
    return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(text)


def _price(value, currency) -> tuple[Decimal | None, str, str]:
    """'12.50', '12.50 EUR' (Merchant Center), or a number; returns (price, currency, problem)."""
    text = _text(value)
    if not text:
        return None, _text(currency).upper(), ""
    parts = text.split()
    amount, unit = parts[0], (parts[1] if len(parts) > 1 else _text(currency))
    try:
        price = Decimal(amount.replace(",", "")) if amount.count(".") <= 1 else None
    except InvalidOperation:
        price = None
    if price is None or not price.is_finite() or len(parts) > 2:
        return None, "", f"the price {text!r} is not a number"
    if price < 0:
        return None, "", f"the price {text!r} is negative"
    if price >= Decimal("1e10"):  # the database keeps 12 digits, 2 after the point
        return None, "", f"the price {text!r} is too large"
    if unit and (len(unit) != 3 or not unit.isalpha()):
        return None, "", f"the currency {unit!r} is not a three-letter ISO code"
    return price.quantize(Decimal("0.01")), unit.upper(), ""

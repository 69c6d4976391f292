"""Keyword analysis: the one way product text and query text become terms.

The keyword side of hybrid search stores each product's terms as a sparse vector in the
index (Qdrant's IDF modifier weighs rare terms up) and as a ``terms`` payload list (so
the index can require every term of a query: "all words match"). Documents and queries
pass through the same steps, so what a shopper types meets what the shop wrote:

1. Unicode NFKC and case folding; traditional Chinese becomes simplified (OpenCC's
   tables, ``opencc-python-reimplemented``).
2. Hyphenated and apostrophe words count whole and in parts ("t-shirt" → tshirt, shirt).
3. Latin words are stemmed with Snowball's English stemmer (mugs → mug, striped and
   stripes → stripe); Chinese runs are cut into words with jieba.
4. One-letter Latin words and stop words ("a", "with", 的, 一个…) are dropped.

A document's terms carry field weights (``VITRINE_KEYWORD_FIELD_WEIGHTS``), summed per
term and saturated as BM25 does (a word repeated in the description does not outweigh
one in the title). Attribute values also count as whole terms ("T恤" → t恤), which joins
words the tokenisers split.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import unicodedata
import zlib
from collections.abc import Iterable

from django.conf import settings

from catalog.translations import is_translated_description

logger = logging.getLogger(__name__)

CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUNS = re.compile(rf"[{CJK}]+|[^\W{CJK}_]+")
_HYPHENATED = re.compile(rf"[^\W{CJK}_]+(?:[-'’][^\W{CJK}_]+)+")
_HAS_CJK = re.compile(f"[{CJK}]")
# BM25's term-frequency saturation (k1); documents are short, so no length normalisation.
SATURATION = 1.2

STOP_WORDS_EN = frozenset(
    """a an the and or of in on at to for with without by from this that these those it its is are be
    i me my we you your want wants need looking look find show please some any something one ones like
    same but just also very really more less than as so such other another new nice good buy get have
    has do does can could would should please thanks thank item items thing things product products""".split()
)
STOP_WORDS_ZH = frozenset(
    """的 地 得 了 着 个 只 件 双 把 条 款 张 台 顶 一 一个 一只 一件 一双 一把 一条 一款 一张 一台 一顶
    我 我们 你 要 想 想要 找 有 有没有 没有 和 与 或 吗 呢 吧 啊 这 那 这个 那个 这种 那种 同样 一样
    但 但是 换 换成 改成 变成 就 也 还 请 给 看 看看 买 来 帮 帮我 些 一些 是 在 类 色 的话
    而且 不过 同款 款式 颜色""".split()
)
STOP_WORDS = STOP_WORDS_EN | STOP_WORDS_ZH

_jieba_lock = threading.Lock()
_jieba = None


def normalise(text: str) -> str:
    """NFKC, case folded, traditional Chinese as simplified."""
    text = unicodedata.normalize("NFKC", text or "").casefold()
    if _HAS_CJK.search(text):
        text = _converter().convert(text)
    return text


@functools.cache
def _converter():
    from opencc import OpenCC

    return OpenCC("t2s")


@functools.cache
def _stemmer():
    import snowballstemmer

    return snowballstemmer.stemmer("english")


def _cut(run: str) -> list[str]:
    global _jieba
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                tokenizer = jieba.Tokenizer()
                tokenizer.initialize()
                _jieba = tokenizer
    return _jieba.lcut(run, HMM=True)


def tokenizer_ready() -> None:
    """Load jieba's dictionary now (about 0.6 s, once per process)."""
    _cut("预热")


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    if not word.isascii() or word.isdigit():
        return word
    return _stemmer().stemWord(word)


def words(text: str) -> list[tuple[str, str]]:
    """(term, surface word) pairs of an already normalised text, stop words included, in
    order. A hyphenated word gives its joined form first, then its parts."""
    pairs: list[tuple[str, str]] = []
    position = 0
    for match in _HYPHENATED.finditer(text):
        pairs.extend(_run_words(text[position : match.start()]))
        joined = re.sub(r"[-'’]", "", match.group())
        pairs.append((stem(joined), joined))
        pairs.extend(_run_words(match.group().replace("-", " ").replace("'", " ").replace("’", " ")))
        position = match.end()
    pairs.extend(_run_words(text[position:]))
    return pairs


def _run_words(text: str) -> list[tuple[str, str]]:
    pairs = []
    for run in _RUNS.findall(text):
        if _HAS_CJK.match(run):
            pairs.extend((word, word) for word in _cut(run) if word.strip())
        else:
            pairs.append((stem(run), run))
    return pairs


def is_searchable(term: str, surface: str = "") -> bool:
    """Whether a term counts: not a stop word, not a lone Latin letter."""
    if (surface or term) in STOP_WORDS or term in STOP_WORDS:
        return False
    return not (len(term) == 1 and term.isascii() and not term.isdigit())


def terms(text: str) -> list[str]:
    """The searchable terms of a text, in order (repeats kept)."""
    return [term for term, surface in words(normalise(text)) if is_searchable(term, surface)]


def whole_term(value: str) -> str:
    """An attribute value as one term ("T恤" → t恤, "Casa Mora" → casamora)."""
    joined = re.sub(rf"[^\w{CJK}]+", "", normalise(value))
    return stem(joined) if joined.isascii() else joined


# --- documents ---------------------------------------------------------------------------


def field_weights() -> dict[str, float]:
    return dict(settings.VITRINE_KEYWORD_FIELD_WEIGHTS)


def attribute_items(attributes) -> Iterable[tuple[str, str]]:
    """(key, value as text) for each searchable attribute value: strings and numbers, a
    list's items each (booleans and nested objects are not words)."""
    if not isinstance(attributes, dict):
        return
    for key, value in attributes.items():
        if is_translated_description(key):  # prose, not a value: see product_fields
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, (str, int, float)) and not isinstance(item, bool) and str(item):
                yield key, str(item)


def translated_descriptions(attributes) -> list[str]:
    if not isinstance(attributes, dict):
        return []
    return [value for key, value in attributes.items() if is_translated_description(key) and isinstance(value, str)]


def alt_texts(product) -> list[str]:
    """The alt text of the product's photos, in every language (catalog.models.ProductImage)."""
    if product.pk is None:
        return []
    prefetched = getattr(product, "_prefetched_objects_cache", {}).get("images")
    if prefetched is not None:
        rows = [(image.alt_text, image.alt_text_zh) for image in prefetched]
    else:
        rows = product.images.exclude(alt_text="", alt_text_zh="").values_list("alt_text", "alt_text_zh")
    return [text for row in rows for text in row if text]


def product_fields(product) -> dict[str, list[str]]:
    """The texts of a product per keyword field."""
    items = list(attribute_items(product.attributes))
    values = [value for key, value in items if key != "tags"]
    tags = [value for key, value in items if key == "tags"]
    return {
        "title": [product.title or ""],
        "brand": [product.brand or ""],
        "category": [product.category or ""],
        "attributes": values,
        "tags": tags,
        # The description and its translations (catalog.translations: "description_zh"…),
        # and what the photos' alt text says: prose about the product, weighed alike.
        "description": [product.description or ""] + translated_descriptions(product.attributes) + alt_texts(product),
        "external_id": [product.external_id or ""],
    }


def document_terms(fields: dict[str, Iterable[str]]) -> dict[str, float]:
    """A document's terms with their weights (field-weighted, saturated frequency)."""
    weights = field_weights()
    raw: dict[str, float] = {}
    for field, texts in fields.items():
        weight = weights.get(field, 0.0)
        if weight <= 0:
            continue
        for text in texts:
            if not text:
                continue
            found = terms(text)
            if field in ("attributes", "tags", "brand", "category", "external_id"):
                whole = whole_term(text)
                if whole and whole not in found:
                    found.append(whole)
            for term in found:
                raw[term] = raw.get(term, 0.0) + weight
    return {term: round(value * (SATURATION + 1) / (value + SATURATION), 4) for term, value in raw.items()}


def product_terms(product) -> dict[str, float]:
    return document_terms(product_fields(product))


def term_index(term: str) -> int:
    """A term's dimension in the sparse vectors (a stable 32-bit hash: the same in every
    process and on every machine)."""
    return zlib.crc32(term.encode("utf-8"))


def sparse(weights: dict[str, float]) -> tuple[list[int], list[float]]:
    """Indices and values of a sparse vector (terms hashing alike are summed)."""
    merged: dict[int, float] = {}
    for term, weight in weights.items():
        index = term_index(term)
        merged[index] = merged.get(index, 0.0) + weight
    indices = sorted(merged)
    return indices, [merged[i] for i in indices]

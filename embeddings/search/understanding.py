"""Query understanding: what a shopper's words mean to this catalog, before either
retriever runs.

The words are normalised as product text is (``embeddings.keywords``: NFKC, case folding,
traditional → simplified Chinese, stemming, jieba), then read against the catalog's own
vocabulary, built from its products' titles, brands, categories, attributes and tags:

- **spelling**: a word the catalog does not know is corrected to a catalog word one edit
  away (a deleted, added, changed or swapped letter; words of 4+ letters), the most
  common one first: "stripd mug" → "striped mug", shown as "Showing results for …";
- **compounds**: neighbouring words that the catalog writes as one are joined
  ("t shirt" → t-shirt, "t恤");
- **synonyms** from the merchandisers' table (admin: Synonyms) widen each word to its
  alternatives, on the keyword side;
- every word the catalog knows becomes a **required group** (a product must match one of
  the group's terms to be shown as relevant); stop words and filler ("I want", 一个,
  的) and words the catalog has never seen are left out of what is required;
- brands, categories and attribute values are recognised as such (for ``explain`` and for
  "this, but in red": an attribute value says what to change).
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.db import close_old_connections
from django.db.models import Count, Max

from catalog.models import Product
from catalog.translations import translation_suffixes
from embeddings.keywords import (
    CJK,
    attribute_items,
    is_searchable,
    normalise,
    stem,
    terms,
    tokenizer_ready,
    whole_term,
    words,
)
from embeddings.models import Synonym
from searchsite.caching import cache_call

logger = logging.getLogger(__name__)

VOCABULARY_SECONDS = 30  # how often the catalog is checked for changes (a cheap count)
MIN_CORRECTABLE = 4  # shorter words are not corrected ("mg" is too ambiguous)
MIN_PREFIX = 3  # a last word this long that no product has is read as the start of one
MAX_COMPLETIONS = 12
SYNONYM_WEIGHT = 0.8  # a synonym's weight in the keyword query, against the word typed


@dataclass
class Vocabulary:
    """The catalog's words, for reading queries."""

    # term → how many products have it in a title, brand, category, attribute or tag
    products: Counter = field(default_factory=Counter)
    # term → the word as the catalog writes it most ("stripe" → "striped")
    surface: dict[str, str] = field(default_factory=dict)
    # surface word → terms (for spelling: words are compared as written)
    surfaces: set[str] = field(default_factory=set)
    ordered_surfaces: list[str] = field(default_factory=list)  # for prefixes (a word being typed)
    # a word with one letter deleted → the catalog words it comes from
    deletes: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    brands: dict[str, str] = field(default_factory=dict)  # whole term → brand as written
    categories: dict[str, str] = field(default_factory=dict)
    # term → {(attribute key, value as written)}
    attribute_values: dict[str, set[tuple[str, str]]] = field(default_factory=lambda: defaultdict(set))
    # term → its synonyms' terms
    synonyms: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # (facet name, value) → {language suffix: the value in that language}, from products
    # that send translations ("colour": "red" with "colour_zh": "红色"; catalog.translations)
    labels: dict[tuple[str, str], dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    signature: tuple = ()

    def label(self, facet: str, value: str, suffix: str | None) -> str:
        """A facet value as shoppers of a language read it (the value itself if no product
        translates it)."""
        if not suffix:
            return value
        return self.labels.get((facet, value), {}).get(suffix, value)

    def knows(self, term: str) -> bool:
        return term in self.products


@dataclass(frozen=True)
class QueryPlan:
    text: str  # as asked
    corrected: str | None  # the words searched when spelling was corrected
    # Per word the catalog knows: the alternatives (the word's term and its synonyms).
    groups: tuple[tuple[str, ...], ...]
    weights: dict[str, float]  # the keyword query: every searchable term and synonym
    unknown: tuple[str, ...]  # searchable words the catalog does not have
    vector_text: str  # what the vector side encodes
    brands: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    # (attribute key, value) pairs the words name ("red" → ("colour", "red"))
    attributes: tuple[tuple[str, str], ...] = ()

    @property
    def has_keywords(self) -> bool:
        return bool(self.groups)


_lock = threading.Lock()
_vocabulary: Vocabulary | None = None
_checked_at = 0.0
_seen_version = None
_build_seconds = 0.0
_refreshing = threading.Lock()  # one background rebuild at a time
VERSION_KEY = "vitrine:vocabulary-version"
BACKGROUND_BUILD_SECONDS = 0.2
MIN_REBUILD_SECONDS = 5


def vocabulary_touch() -> None:
    """Say that products or synonyms changed: every process re-checks its vocabulary on
    its next search (without this, within ``VOCABULARY_SECONDS``)."""
    cache_call("set", None, VERSION_KEY, uuid.uuid4().hex, None)


def vocabulary() -> Vocabulary:
    """The catalog's vocabulary, rebuilt when products or synonyms changed (checked when
    told by :func:`vocabulary_touch`, and every ``VOCABULARY_SECONDS``). A small catalog's is
    checked and rebuilt in the search that notices; a large one's (a build over
    ``BACKGROUND_BUILD_SECONDS``: 1.4 s at 100k products) in a thread, at most once per
    ``MIN_REBUILD_SECONDS``, while searches keep reading the previous one."""
    global _seen_version
    now = time.monotonic()
    version = cache_call("get", None, VERSION_KEY)
    current = _vocabulary
    if current is not None and version == _seen_version and now - _checked_at < VOCABULARY_SECONDS:
        return current
    if current is None or _build_seconds <= BACKGROUND_BUILD_SECONDS:
        with _lock:
            _seen_version = version
            return _refresh()
    if now - _checked_at >= MIN_REBUILD_SECONDS and _refreshing.acquire(blocking=False):
        _seen_version = version
        threading.Thread(target=_refresh_in_background, name="vitrine-vocabulary", daemon=True).start()
    return current


def _refresh() -> Vocabulary:
    """Check the catalog's signature and rebuild if it changed (the caller holds a lock)."""
    global _vocabulary, _checked_at, _build_seconds
    signature = _signature()
    if _vocabulary is None or _vocabulary.signature != signature:
        tokenizer_ready()  # once per process: not part of what a rebuild costs
        started = time.monotonic()
        _vocabulary = vocabulary_build(signature)
        _build_seconds = time.monotonic() - started
    _checked_at = time.monotonic()
    return _vocabulary


def _refresh_in_background() -> None:
    try:
        with _lock:
            _refresh()
    except Exception:  # noqa: BLE001 - a failed rebuild keeps the previous vocabulary
        logger.exception("Rebuilding the search vocabulary failed; the previous one stays in use")
    finally:
        close_old_connections()
        _refreshing.release()


def vocabulary_forget() -> None:
    """Drop the cached vocabulary (tests, and after a bulk change)."""
    global _vocabulary, _checked_at, _build_seconds
    with _lock:
        _vocabulary, _checked_at, _build_seconds = None, 0.0, 0.0


def _signature() -> tuple:
    products = Product.objects.filter(is_active=True).aggregate(n=Count("pk"), at=Max("updated_at"))
    synonyms = Synonym.objects.aggregate(n=Count("pk"), at=Max("updated_at"))
    return (products["n"], products["at"], synonyms["n"], synonyms["at"])


def vocabulary_build(signature: tuple = ()) -> Vocabulary:
    vocab = Vocabulary(signature=signature)
    surface_counts: dict[str, Counter] = defaultdict(Counter)

    def add(text: str, count: int, *, whole: bool) -> set[str]:
        found = set()
        normalised = normalise(text)
        for term, surface in words(normalised):
            if is_searchable(term, surface):
                found.add(term)
                surface_counts[term][surface] += count
        if whole:
            joined = whole_term(text)
            if joined and joined not in found:
                found.add(joined)
                surface_counts[joined][normalised] += count
        return found

    rows = Product.objects.filter(is_active=True).values_list("title", "brand", "category", "attributes")
    per_value: Counter = Counter()
    suffixes = translation_suffixes()
    for title, brand, category, attributes in rows.iterator(chunk_size=2000):
        if isinstance(attributes, dict):
            _labels_add(vocab.labels, category, attributes, suffixes)
        per_value[("title", title)] += 1
        if brand:
            per_value[("brand", brand)] += 1
        if category:
            per_value[("category", category)] += 1
        for key, value in attribute_items(attributes):
            per_value[(f"attr:{key}", value)] += 1
    # Distinct values are analysed once each (a catalog repeats its brands and values).
    # Products per term, per field; a term's count is its largest (a mug's title and its kind
    # attribute both say "mug": one product, not two).
    per_field: dict[str, Counter] = defaultdict(Counter)
    for (kind, value), count in per_value.items():
        found = add(value, count, whole=kind != "title")
        for term in found:
            per_field[kind][term] += count
        if kind == "brand":
            vocab.brands[whole_term(value)] = value
            for term in found:
                vocab.brands.setdefault(term, value)
        elif kind == "category":
            vocab.categories[whole_term(value)] = value
            for term in found:
                vocab.categories.setdefault(term, value)
        elif kind.startswith("attr:"):
            # A value names itself ("red", "T恤"), not each word of a longer one.
            whole = whole_term(value)
            for term in found:
                if len(found) == 1 or term == whole:
                    vocab.attribute_values[term].add((kind[5:], value))
    per_product: Counter = Counter()
    for counts in per_field.values():
        for term, count in counts.items():
            per_product[term] = max(per_product[term], count)
    vocab.products = per_product
    for term, counts in surface_counts.items():
        vocab.surface[term] = counts.most_common(1)[0][0]
        for surface in counts:
            if " " in surface or not surface.isalpha():
                continue
            vocab.surfaces.add(surface)
            if surface.isascii() and len(surface) >= MIN_CORRECTABLE - 1:
                for deleted in _deletes(surface):
                    vocab.deletes[deleted].add(surface)
    vocab.ordered_surfaces = sorted(vocab.surfaces)
    for synonym in Synonym.objects.filter(is_active=True):
        entries = [term for term in map(word_term, synonym.words) if term]
        heads = entries[:1] if synonym.one_way else entries
        for head in heads:
            vocab.synonyms[head].update(term for term in entries if term != head)
    return vocab


def _labels_add(labels: dict, category: str, attributes: dict, suffixes: tuple[str, ...]) -> None:
    for suffix in suffixes:
        translated = attributes.get(f"category_{suffix}")
        if category and isinstance(translated, str) and translated:
            labels[("category", category)].setdefault(suffix, translated)
        for key, value in attributes.items():
            translated = attributes.get(f"{key}_{suffix}")
            if isinstance(value, str) and value and isinstance(translated, str) and translated:
                labels[(f"attr.{key}", value)].setdefault(suffix, translated)


def word_term(word: str) -> str:
    """The one term a word or phrase stands for (a synonym entry, an admin's word): its
    term, or a phrase's joined term ("t shirt" → tshirt); "" for a stop word alone."""
    found = terms(word)
    return found[0] if len(found) == 1 else whole_term(word)


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))} | {word}


def _correction(surface: str, vocab: Vocabulary) -> str | None:
    """A catalog word one edit from ``surface`` (the most common), or None."""
    if len(surface) < MIN_CORRECTABLE or not surface.isascii() or not surface.isalpha():
        return None
    found: set[str] = set()
    for deleted in _deletes(surface):
        found |= vocab.deletes.get(deleted, set())
    found.discard(surface)
    # One edit: the same length (a changed or swapped letter) or one letter more or less.
    found = {word for word in found if abs(len(word) - len(surface)) <= 1 and _one_edit(surface, word)}
    if not found:
        return None
    return max(sorted(found), key=lambda word: vocab.products.get(stem(word), 0))


def _completions(prefix: str, vocab: Vocabulary) -> list[str]:
    """Catalog terms of the words starting with ``prefix`` (a word still being typed: "stri"
    → striped), the most common first."""
    if len(prefix) < MIN_PREFIX or not prefix.isascii() or not prefix.isalpha():
        return []
    start = bisect.bisect_left(vocab.ordered_surfaces, prefix)
    found = []
    for surface in vocab.ordered_surfaces[start:]:
        if not surface.startswith(prefix):
            break
        found.append(stem(surface))
    found = [term for term in dict.fromkeys(found) if vocab.knows(term)]
    return sorted(found, key=lambda term: -vocab.products[term])[:MAX_COMPLETIONS]


def _one_edit(a: str, b: str) -> bool:
    if len(a) == len(b):
        differ = [i for i in range(len(a)) if a[i] != b[i]]
        if len(differ) == 1:
            return True
        if len(differ) != 2 or differ[1] != differ[0] + 1:
            return False
        return a[differ[0]] == b[differ[1]] and a[differ[1]] == b[differ[0]]  # swapped neighbours
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def understand(text: str, *, correct: bool = True, vocab: Vocabulary | None = None) -> QueryPlan:
    """Read a query against the catalog's vocabulary."""
    vocab = vocab or vocabulary()
    normalised = normalise(text)
    pairs = [(term, surface) for term, surface in words(normalised)]
    # Neighbours the catalog writes as one word ("t shirt" → tshirt; "t" + "恤" → t恤).
    merged: list[tuple[str, str]] = []
    index = 0
    while index < len(pairs):
        if index + 1 < len(pairs):
            joined = pairs[index][1] + pairs[index + 1][1]
            joined_term = whole_term(joined)
            if joined_term and vocab.knows(joined_term) and not vocab.knows(pairs[index][0]):
                merged.append((joined_term, joined))
                index += 2
                continue
        merged.append(pairs[index])
        index += 1

    corrections: list[tuple[str, str]] = []
    read: list[tuple[str, str]] = []
    for term, surface in merged:
        if not is_searchable(term, surface):
            continue
        if not vocab.knows(term) and not vocab.synonyms.get(term) and correct:
            fixed = _correction(surface, vocab)
            if fixed is not None:
                corrections.append((surface, fixed))
                term, surface = stem(fixed), fixed
        read.append((term, surface))

    groups: list[tuple[str, ...]] = []
    weights: dict[str, float] = {}
    unknown: list[str] = []
    vector_words: list[str] = []
    brands, categories, attributes = [], [], []
    typing = text[-1:].isalnum()  # the last word may be unfinished (search-as-you-type)
    for position, (term, surface) in enumerate(read):
        alternatives = [term, *sorted(vocab.synonyms.get(term, ()))]
        if position == len(read) - 1 and typing and not any(vocab.knows(t) for t in alternatives):
            alternatives += _completions(surface, vocab)
        weights[term] = max(weights.get(term, 0.0), 1.0)
        for other in alternatives[1:]:
            weights[other] = max(weights.get(other, 0.0), SYNONYM_WEIGHT)
        known = [t for t in alternatives if vocab.knows(t)]
        if not known:
            unknown.append(surface)
            continue
        group = tuple(dict.fromkeys(known))
        if group not in groups:
            groups.append(group)
        # The vector side reads the catalog's own word ("cups" → mug when only mugs exist).
        canonical = term if vocab.knows(term) else max(known, key=lambda t: vocab.products[t])
        vector_words.append(vocab.surface.get(canonical, surface))
        for t in known:
            if t in vocab.brands:
                brands.append(vocab.brands[t])
            if t in vocab.categories:
                categories.append(vocab.categories[t])
            attributes.extend(sorted(vocab.attribute_values.get(t, ())))
    corrected = None
    if corrections:
        corrected = normalised.strip()
        for wrong, right in corrections:
            corrected = re.sub(rf"(?<!\w){re.escape(wrong)}(?!\w)", right, corrected)
    vector_text = _joined(vector_words) if vector_words else (corrected or text.strip())
    return QueryPlan(
        text=text,
        corrected=corrected,
        groups=tuple(groups),
        weights=weights,
        unknown=tuple(unknown),
        vector_text=vector_text,
        brands=tuple(dict.fromkeys(brands)),
        categories=tuple(dict.fromkeys(categories)),
        attributes=tuple(dict.fromkeys(attributes)),
    )


def _joined(parts: list[str]) -> str:
    """Words as one text: Chinese ones side by side, others with spaces."""
    text = ""
    for part in parts:
        if text and not (_is_cjk(text[-1]) and _is_cjk(part[:1])):
            text += " "
        text += part
    return text


def _is_cjk(char: str) -> bool:
    return bool(_CJK_CHAR.match(char))


_CJK_CHAR = re.compile(f"[{CJK}]")

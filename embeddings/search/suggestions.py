"""The catalog's own words as search box suggestions: its brands, categories and attribute
values (a kind, a colour, a pattern…), in the shopper's language where the products send
a translation (catalog.translations: "kind_zh": "杯子"), matched against what has been
typed so far.

Read from the query vocabulary (``understanding.vocabulary()``), which already knows every
value and its Chinese label; the list of candidates is made once per vocabulary and
language, so a keystroke costs a scan of a few thousand short strings at most.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from catalog.translations import is_translation_key
from embeddings.keywords import CJK, normalise, whole_term
from embeddings.search.understanding import Vocabulary, vocabulary

# A value longer than this is a sentence (a title, a note), not a word to complete to.
MAX_VALUE_CHARS = 40
# Attributes that are not values a shopper types: product text, or the shop's own data.
SKIPPED_ATTRIBUTES = {"title", "description", "url", "sku", "gtin", "ean", "id"}
# When two kinds share a text ("mug" a category and a kind), the first named wins.
KIND_ORDER = ("brand", "category", "value")

_WORD_START = re.compile(rf"(?:^|[^\w{CJK}])(\w)")
_HAS_CJK = re.compile(f"[{CJK}]")
_HAS_LETTER = re.compile(rf"[^\W\d_]|[{CJK}]")


@dataclass(frozen=True)
class Candidate:
    text: str  # as shown and searched
    kind: str  # "brand", "category" or "value"
    key: str  # normalised text, what the typed prefix is compared with
    products: int


_lock = threading.Lock()
_candidates: dict[tuple[int, str | None], tuple[Vocabulary, list[Candidate]]] = {}


def vocabulary_suggestions(prefix: str, *, suffix: str | None, limit: int = 8) -> list[tuple[str, str]]:
    """(text, kind) of the catalog's brands, categories and values that ``prefix`` starts (or
    starts a word of; for Chinese, appears anywhere in), in the language of ``suffix``
    (None: as written), those on most products first. Several words complete the last one:
    "red str" → "red striped"."""
    typed = normalise(prefix).strip()
    if not typed:
        return []
    candidates = _candidates_for(vocabulary(), suffix)
    found = _matching(typed, candidates, limit)
    if found or " " not in typed:
        return found
    head, last = prefix.strip().rsplit(" ", 1)
    return [(f"{head} {text}", kind) for text, kind in _matching(normalise(last), candidates, limit)]


def _matching(typed: str, candidates: list[Candidate], limit: int) -> list[tuple[str, str]]:
    if not typed:
        return []
    anywhere = bool(_HAS_CJK.search(typed))  # Chinese words are not separated by spaces
    ranked = []
    for candidate in candidates:
        if candidate.key == typed:
            continue  # already typed in full: nothing to complete
        if candidate.key.startswith(typed):
            rank = 0
        elif (anywhere and typed in candidate.key) or _starts_a_word(typed, candidate.key):
            rank = 1
        else:
            continue
        ranked.append((rank, -candidate.products, candidate.key, candidate))
    ranked.sort(key=lambda row: row[:3])
    return [(row[3].text, row[3].kind) for row in ranked[:limit]]


def _starts_a_word(typed: str, key: str) -> bool:
    return any(key.startswith(typed, match.start(1)) for match in _WORD_START.finditer(key))


def _candidates_for(vocab: Vocabulary, suffix: str | None) -> list[Candidate]:
    """Made once per vocabulary (it is replaced, never changed, when the catalog changes)."""
    key = (id(vocab), suffix)
    with _lock:
        held = _candidates.get(key)
        if held is not None and held[0] is vocab:
            return held[1]
    made = candidates_build(vocab, suffix)
    with _lock:
        # Only the current vocabulary's lists are kept (one per language).
        for stale in [k for k, (v, _) in _candidates.items() if v is not vocab]:
            del _candidates[stale]
        _candidates[key] = (vocab, made)
    return made


def candidates_build(vocab: Vocabulary, suffix: str | None) -> list[Candidate]:
    values: list[tuple[str, str, str]] = []  # (kind, facet, value as written)
    values += [("brand", "brand", brand) for brand in set(vocab.brands.values())]
    values += [("category", "category", category) for category in set(vocab.categories.values())]
    for pairs in vocab.attribute_values.values():
        for attribute, value in pairs:
            if attribute in SKIPPED_ATTRIBUTES or is_translation_key(attribute):
                continue
            values.append(("value", f"attr.{attribute}", value))
    best: dict[str, Candidate] = {}
    for kind, facet, value in values:
        text = vocab.label(facet, value, suffix) if kind != "brand" else value
        text = " ".join(text.split())
        if not text or len(text) > MAX_VALUE_CHARS or not _HAS_LETTER.search(text):
            continue
        candidate = Candidate(
            text=text, kind=kind, key=normalise(text), products=vocab.products.get(whole_term(value), 0)
        )
        held = best.get(candidate.key)
        if held is None or KIND_ORDER.index(kind) < KIND_ORDER.index(held.kind):
            best[candidate.key] = candidate
    return sorted(best.values(), key=lambda candidate: candidate.key)

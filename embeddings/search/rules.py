"""Merchandising rules: what a shop's merchandisers tell the search to do for some queries.

A rule (``MerchandisingRule``, edited in the admin) fires for a search when it is enabled,
its date window holds now, and its match holds:

- ``exact``: the query's words, normalised (NFKC, case folded, traditional Chinese as
  simplified, spaces collapsed: "Mugs " is "mugs"), are the phrase;
- ``contains``: they contain the phrase (as a run of characters: "mug" is in "red mugs");
- ``category``: the shopper filtered on the category, or the engine read the words as
  naming it (its understanding plan: "mugs" names the category "Mug");
- ``any``: every search (also photo searches and "more like this").

What a fired rule does, in ``catalog_search``:

- **hide**: the product is left out of the search altogether (hits, totals, facet counts),
  whatever the sort;
- **boost / bury** (relevance sort only): the ranking score (the fused keyword and vector
  score; for vectors alone, the similarity) of each listed product a boost selects is
  multiplied by its factor (1.5 lifts, 0.5 buries; several boosts multiply; a negative
  score is divided instead, so a factor over 1 always lifts). Boosts reorder the listed
  products; they do not decide which products are relevant;
- **pin** (relevance sort only): the product is put at that position of the whole result
  list (1: the first result of page 1), also when it was not among the results (then with
  its first indexed photo). A pinned product the search could not list (inactive, no
  indexed photo, hidden, or not matching the shopper's filters) is skipped, and
  ``rules_fired`` says why. A position past the end puts it last.

Rules are read from the database at most once per ``RULES_SECONDS`` per process, and after
a change (:func:`rules_touch`, called when a rule or one of its rows is saved): at once in
the process that saved it, within ``VERSION_CHECK_SECONDS`` in the others.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import numpy as np
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from catalog.models import Product, ProductImage
from embeddings.keywords import normalise
from embeddings.search.types import Candidate
from searchsite.caching import cache_call

RULES_SECONDS = 5.0  # a process re-reads the rules this often even when told nothing
# How often a process asks the shared cache whether rules changed elsewhere: a cache read
# per search cost more than applying ten rules (0.17 ms of a 4.5-ms search, measured).
VERSION_CHECK_SECONDS = 1.0
VERSION_KEY = "vitrine:rules-version"
TRUE_WORDS = {"true", "yes", "1", "y", "on"}


def query_normalise(text: str) -> str:
    """The query as rules compare it: normalised as the keyword side reads words, spaces
    collapsed."""
    return " ".join(normalise(text).split())


# Brands, categories and attribute values repeat across a search's candidates (and
# searches): each is normalised once, not once per candidate and boost.
_value_normalise = functools.lru_cache(maxsize=8192)(query_normalise)


@dataclass(frozen=True)
class Boost:
    field: str  # brand, category, attribute, price
    factor: float
    key: str = ""
    value: str = ""  # normalised
    low: Decimal | None = None
    high: Decimal | None = None

    def selects(self, candidate: Candidate) -> bool:
        if self.field == "brand":
            return _value_normalise(candidate.brand) == self.value
        if self.field == "category":
            return _value_normalise(candidate.category) == self.value
        if self.field == "price":
            return candidate.price is not None and self._in_range(candidate.price)
        value = (candidate.attributes or {}).get(self.key)
        values = value if isinstance(value, list) else [value]
        return any(self._attribute_selects(v) for v in values if v is not None)

    def _attribute_selects(self, value) -> bool:
        if self.value:
            shown = ("true" if value else "false") if isinstance(value, bool) else str(value)
            return _value_normalise(shown) == self.value
        if self.low is not None or self.high is not None:
            if isinstance(value, bool):
                return False
            try:
                number = Decimal(str(value))
            except ArithmeticError:
                return False
            return number.is_finite() and self._in_range(number)
        if isinstance(value, bool | int | float):
            return bool(value)
        return str(value).strip().casefold() in TRUE_WORDS

    def _in_range(self, number: Decimal) -> bool:
        return (self.low is None or number >= self.low) and (self.high is None or number < self.high)


@dataclass(frozen=True)
class Rule:
    id: int
    name: str
    match: str  # exact, contains, category, any
    phrase: str = ""  # normalised
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    pins: tuple[tuple[int, int], ...] = ()  # (position, product id)
    hides: tuple[int, ...] = ()
    boosts: tuple[Boost, ...] = ()

    def is_live(self, now: datetime) -> bool:
        return (self.starts_at is None or self.starts_at <= now) and (self.ends_at is None or now < self.ends_at)

    def fires(self, text: str, categories: set[str]) -> bool:
        """``text`` and ``categories`` normalised (:func:`query_normalise`)."""
        if self.match == "any":
            return True
        if self.match == "exact":
            return bool(text) and text == self.phrase
        if self.match == "contains":
            return bool(text) and bool(self.phrase) and self.phrase in text
        return self.phrase in categories

    @property
    def reference(self) -> dict:
        return {"id": self.id, "name": self.name}


@dataclass
class RuleEffects:
    """What the fired rules do to one search."""

    fired: tuple[Rule, ...] = ()
    hidden: frozenset[int] = frozenset()
    # (position, product id, rule), by position; a product pinned by several rules: the first.
    pins: tuple[tuple[int, int, Rule], ...] = ()
    boosts: tuple[tuple[Rule, Boost], ...] = ()
    # product id → (factor, rules, score before), for the products a boost selected
    boosted: dict[int, tuple[float, tuple[Rule, ...], float]] = field(default_factory=dict)
    pinned: dict[int, tuple[int, Rule]] = field(default_factory=dict)  # product id → (position, rule)
    # rule id → [{product_id, position, reason}]: pins the search could not place
    skipped: dict[int, list[dict]] = field(default_factory=dict)

    @property
    def reorders(self) -> bool:
        return bool(self.pins or self.boosts)

    def boost(self, candidates: list[Candidate]) -> None:
        """Multiply each selected candidate's ranking score by its boosts' factors."""
        if not self.boosts:
            return
        for candidate in candidates:
            factor, rules = 1.0, []
            for rule, boost in self.boosts:
                if boost.selects(candidate):
                    factor *= boost.factor
                    rules.append(rule)
            if rules:
                score = candidate.rank_score
                candidate.rank_score = score * factor if score >= 0 else score / factor
                self.boosted[candidate.product_id] = (factor, tuple(dict.fromkeys(rules)), score)

    def score_before(self, candidate: Candidate) -> float:
        """The candidate's ranking score before boosts."""
        boosted = self.boosted.get(candidate.product_id)
        return boosted[2] if boosted is not None else candidate.rank_score

    def explain(self, product_id: int) -> dict:
        factor, rules, _ = self.boosted.get(product_id, (1.0, (), 0.0))
        pin = self.pinned.get(product_id)
        if pin is not None:
            rules = tuple(dict.fromkeys((*rules, pin[1])))
        return {
            "rules": [rule.reference for rule in rules],
            "factor": round(factor, 6),
            "pinned": pin[0] if pin is not None else None,
        }

    def fired_shown(self) -> tuple[dict, ...]:
        return tuple({**rule.reference, "skipped_pins": self.skipped.get(rule.id, [])} for rule in self.fired)


def rules_effects(
    rules: tuple[Rule, ...], *, text: str, categories, relevance: bool, now: datetime | None = None
) -> RuleEffects:
    """The effects of the rules that fire for a search of ``text`` (as typed) in
    ``categories`` (filtered or understood); ``relevance``: sorted by relevance (pins and
    boosts apply only then)."""
    if not rules:
        return RuleEffects()
    now = now or timezone.now()
    text = query_normalise(text)
    categories = {_value_normalise(c) for c in categories}
    fired = tuple(rule for rule in rules if rule.is_live(now) and rule.fires(text, categories))
    if not fired:
        return RuleEffects()
    hidden = frozenset(product_id for rule in fired for product_id in rule.hides)
    pins, pinned_products = [], set()
    if relevance:
        every_pin = [(position, product_id, rule) for rule in fired for position, product_id in rule.pins]
        for pin in sorted(every_pin, key=lambda pin: pin[0]):
            if pin[1] not in pinned_products:  # a hidden one is skipped, with the reason, when placed
                pinned_products.add(pin[1])
                pins.append(pin)
    boosts = tuple((rule, boost) for rule in fired for boost in rule.boosts) if relevance else ()
    return RuleEffects(fired=fired, hidden=hidden, pins=tuple(pins), boosts=boosts)


# --- The saved rules, per process -------------------------------------------------------

_lock = threading.Lock()
_rules: tuple[Rule, ...] | None = None
_seen_version = None
_loaded_at = 0.0
_checked_at = 0.0
# Pinned products the searches did not find, as the rules were read: (space, product id,
# active) → a PinnedProduct or why it cannot be listed. Emptied when the rules are re-read.
_pinned: dict[tuple[str, int, bool | None], PinnedProduct | str] = {}


def rules_touch() -> None:
    """Say that rules changed: this process re-reads them on its next search, the others
    within ``VERSION_CHECK_SECONDS``."""
    cache_call("set", None, VERSION_KEY, uuid.uuid4().hex, None)
    rules_forget()


def rules_touch_on_commit() -> None:
    transaction.on_commit(rules_touch, robust=True)


def rules_forget() -> None:
    """Drop this process's rules (tests)."""
    global _rules, _loaded_at
    with _lock:
        _rules, _loaded_at = None, 0.0
        _pinned.clear()


def rules_saved() -> tuple[Rule, ...]:
    """The enabled rules, read from the database when told (:func:`rules_touch`: at once in
    this process, within ``VERSION_CHECK_SECONDS`` in the others) or every
    ``RULES_SECONDS``; between those, no cache or database read at all."""
    global _rules, _seen_version, _loaded_at, _checked_at
    now = time.monotonic()
    current = _rules
    fresh = current is not None and now - _loaded_at < RULES_SECONDS
    if fresh and now - _checked_at < VERSION_CHECK_SECONDS:
        return current
    version = cache_call("get", None, VERSION_KEY)
    _checked_at = now
    if fresh and version == _seen_version:
        return current
    with _lock:
        _rules = rules_load()
        _pinned.clear()
        _seen_version, _loaded_at = version, now
        return _rules


@dataclass(frozen=True)
class PinnedProduct:
    image_id: int  # its first indexed photo
    vector: np.ndarray | None  # that photo's, in the space (None: not indexed there)
    category: str
    brand: str
    price: Decimal | None
    attributes: dict


def pinned_products(product_ids, *, active: bool | None, space, index) -> tuple[dict[int, PinnedProduct], dict]:
    """The pinned products (``product_ids``) a search did not find, read as the rules are
    (once per re-read: not per search), and why the others cannot be listed."""
    missing = [p for p in product_ids if (space.id, p, active) not in _pinned]
    if missing:
        loaded = _pinned_load(missing, active, space, index)
        with _lock:
            _pinned.update(((space.id, p, active), value) for p, value in loaded.items())
    found, reasons = {}, {}
    for product_id in product_ids:
        value = _pinned.get((space.id, product_id, active), "not found")
        if isinstance(value, str):
            reasons[product_id] = value
        else:
            found[product_id] = value
    return found, reasons


def _pinned_load(product_ids: list[int], active: bool | None, space, index) -> dict[int, PinnedProduct | str]:
    rows = ProductImage.objects.filter(product_id__in=product_ids, state=ProductImage.State.INDEXED)
    if active is not None:
        rows = rows.filter(product__is_active=active)
    rows = rows.select_related("product").only(
        "product_id", "position", *(f"product__{name}" for name in ("category", "brand", "price", "attributes"))
    )
    photos = {}
    for image in rows.order_by("product_id", "position", "id"):
        photos.setdefault(image.product_id, image)
    unlisted = [p for p in product_ids if p not in photos]
    states = dict(Product.objects.filter(pk__in=unlisted).values_list("pk", "is_active")) if unlisted else {}
    vectors = index.vectors(space, [image.pk for image in photos.values()]) if photos else {}
    loaded: dict[int, PinnedProduct | str] = {}
    for product_id in product_ids:
        image = photos.get(product_id)
        if image is not None:
            product = image.product
            loaded[product_id] = PinnedProduct(
                image_id=image.pk,
                vector=vectors.get(image.pk),
                category=product.category,
                brand=product.brand,
                price=product.price,
                attributes=product.attributes if isinstance(product.attributes, dict) else {},
            )
        elif product_id not in states:
            loaded[product_id] = "no such product"
        elif active is not None and states[product_id] != active:
            loaded[product_id] = "inactive" if active else "active"
        else:
            loaded[product_id] = "no indexed photo"
    return loaded


def rules_load(exclude_id: int | None = None) -> tuple[Rule, ...]:
    """The enabled rules from the database (four queries, whatever their number)."""
    from embeddings.models import MerchandisingRule  # models import this module to say "changed"

    rows = MerchandisingRule.objects.filter(is_enabled=True).prefetch_related("pins", "hides", "boosts")
    if exclude_id is not None:
        rows = rows.exclude(pk=exclude_id)
    return tuple(rule_compile(row) for row in rows)


def rule_compile(row, *, pins=None, hides=None, boosts=None) -> Rule:
    """A saved (or, with the rows given, a draft) rule as the engine reads it."""
    pins = row.pins.all() if pins is None else pins
    hides = row.hides.all() if hides is None else hides
    boosts = row.boosts.all() if boosts is None else boosts
    return Rule(
        id=row.pk or 0,
        name=row.name,
        match=row.match,
        phrase=query_normalise(row.phrase),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        pins=tuple((pin.position, pin.product_id) for pin in pins),
        hides=tuple(hide.product_id for hide in hides),
        boosts=tuple(
            Boost(
                field=b.field,
                factor=float(b.factor),
                key=b.key.strip(),
                value=query_normalise(b.value),
                low=b.low,
                high=b.high,
            )
            for b in boosts
        ),
    )


def pin_conflicts(rule, positions: list[int]) -> list[str]:
    """Why the pins at ``positions`` of ``rule`` (a MerchandisingRule, maybe unsaved)
    clash: two at one position in the rule, or a position another enabled rule for the same
    match and phrase pins in an overlapping date window."""
    from embeddings.models import MerchandisingRule, RulePin

    twice = sorted({p for p in positions if positions.count(p) > 1})
    problems = [f"Two pins at position {p} in this rule." for p in twice]
    if not rule.is_enabled or not positions:
        return problems
    others = MerchandisingRule.objects.filter(is_enabled=True, match=rule.match)
    if rule.pk:
        others = others.exclude(pk=rule.pk)
    if rule.starts_at:
        others = others.filter(Q(ends_at__isnull=True) | Q(ends_at__gt=rule.starts_at))
    if rule.ends_at:
        others = others.filter(Q(starts_at__isnull=True) | Q(starts_at__lt=rule.ends_at))
    phrase = query_normalise(rule.phrase)
    same = [other.pk for other in others if query_normalise(other.phrase) == phrase]
    taken = RulePin.objects.filter(rule__in=same, position__in=positions).select_related("rule")
    problems += [f"Position {pin.position} is already pinned by the rule “{pin.rule.name}”." for pin in taken]
    return problems

"""What 10 active merchandising rules cost a search, against none, in one run.

    VITRINE_DATA_DIR=var .venv/bin/python benchmarks/rules_cost.py [--queries 100] [--rounds 3]

Runs on the catalog of ``VITRINE_DATA_DIR`` (the demo shop after ``make run``), in the
embedded mode with one torch thread. Ten rules are saved inside a transaction that is rolled
back at the end (the catalog is left as it was): three for every search (a colour boost,
a price bury, a hidden product), the others for some words (exact pins, contains boosts,
category buries), so most queries fire several of them.

For each shopper query (benchmarks/hybrid_latency.py's), both ways run back to back, in
alternating order: ``catalog_search`` with no rules (``rules_override=()``: not even the
rules' cache check) and with the saved rules (read as a search reads them: the per-process
cache, re-read from the database every few seconds). Query vectors are cached after a
warm-up round. Prints p50 and p95 of each and the ratio (target: ≤ 1.1×).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "searchsite.settings")
os.environ.setdefault("VITRINE_TORCH_THREADS", "1")

RULES = 10


class RolledBack(Exception):
    pass


def rules_create() -> None:
    from catalog.models import Product
    from embeddings.models import MerchandisingRule, RuleBoost, RuleHide, RulePin

    products = list(Product.objects.filter(is_active=True).order_by("pk")[:6])

    def rule(name, match, phrase=""):
        return MerchandisingRule.objects.create(name=name, match=match, phrase=phrase)

    RuleBoost.objects.create(rule=rule("Blue first", "any"), field="attribute", key="colour", value="blue", factor=1.2)
    RuleBoost.objects.create(rule=rule("Dear last", "any"), field="price", low=Decimal(100), factor=0.8)
    RuleHide.objects.create(rule=rule("Recalled", "any"), product=products[0])
    RulePin.objects.create(rule=rule("Mug pin", "exact", "mug"), product=products[1], position=1)
    RulePin.objects.create(rule=rule("Lamp pin", "exact", "lamp"), product=products[2], position=2)
    RuleBoost.objects.create(rule=rule("Red Kito", "contains", "red"), field="brand", value="Kito", factor=1.5)
    RuleBoost.objects.create(
        rule=rule("Stripes", "contains", "striped"), field="attribute", key="pattern", value="striped", factor=1.3
    )
    RuleBoost.objects.create(rule=rule("Kitchen", "category", "kitchen"), field="brand", value="Nordlys", factor=0.5)
    RuleBoost.objects.create(rule=rule("Home", "category", "home"), field="price", high=Decimal(50), factor=1.4)
    chair = rule("Chairs", "contains", "chair")
    RuleHide.objects.create(rule=chair, product=products[3])
    RulePin.objects.create(rule=chair, product=products[4], position=3)
    assert MerchandisingRule.objects.filter(is_enabled=True).count() == RULES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import transaction

    from benchmarks.common import percentile
    from benchmarks.hybrid_latency import shopper_queries
    from catalog.models import Product
    from embeddings.commands import index_claim_for_command
    from embeddings.search import SearchQuery, catalog_search
    from embeddings.search.rules import rules_forget

    index_claim_for_command()
    products = Product.objects.count()
    queries = shopper_queries(args.queries)
    ways = {"no rules (baseline)": (), f"{RULES} rules": None}
    fired: list[int] = []

    def run(text: str, rules) -> float:
        started = time.perf_counter()
        page = catalog_search(SearchQuery(text=text, rules_override=rules))
        took = (time.perf_counter() - started) * 1000
        if rules is None:
            fired.append(len(page.rules_fired))
        return took

    timings: dict[str, list[float]] = {name: [] for name in ways}
    try:
        with transaction.atomic():
            rules_create()
            rules_forget()
            for text in queries:  # warm-up: model, vocabulary, query vectors cached for both ways
                for rules in ways.values():
                    run(text, rules)
            fired.clear()
            for round_number in range(args.rounds):
                for number, text in enumerate(queries):
                    order = list(ways.items())
                    if (number + round_number) % 2:
                        order.reverse()
                    for name, rules in order:
                        timings[name].append(run(text, rules))
            raise RolledBack
    except RolledBack:
        rules_forget()

    print(f"{products} products, {len(queries)} queries × {args.rounds} rounds, catalog_search wall time (ms)")
    print(f"  rules fired per search: mean {sum(fired) / len(fired):.1f} of {RULES}")
    for name, values in timings.items():
        print(f"  {name:<22} p50 {percentile(values, 0.5):7.1f}   p95 {percentile(values, 0.95):7.1f}")
    base, ruled = timings["no rules (baseline)"], timings[f"{RULES} rules"]
    print(
        f"  {RULES} rules ÷ none         p50 {percentile(ruled, 0.5) / percentile(base, 0.5):6.2f}×"
        f"   p95 {percentile(ruled, 0.95) / percentile(base, 0.95):6.2f}×   (target ≤ 1.1×)"
    )


if __name__ == "__main__":
    main()

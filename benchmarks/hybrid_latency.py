"""Hybrid search against vectors alone: the latency the keyword side adds, in one run.

    VITRINE_DATA_DIR=var .venv/bin/python benchmarks/hybrid_latency.py [--queries 200] [--rounds 3]

Runs on the catalog of ``VITRINE_DATA_DIR`` (the demo shop after ``make run``, or a
catalog from ``manage.py make_synthetic_catalog --products 20000``), in the embedded mode
with one torch thread. The queries are shopper phrasings of the demo products (titles,
plurals, a typo, filler words, Chinese, traditional characters), the same for both ways.

For each query, both ways run back to back, in alternating order (machine noise hits
both alike): ``catalog_search`` with the keyword side off (``VITRINE_KEYWORD_SEARCH=0``:
the bare baseline, the engine before hybrid search) and on. Query vectors are cached
after a warm-up round, so the figures are the search's own cost, not the model's (which
both pay alike). Prints p50 and p95 of each and the ratios (target: hybrid ≤ 1.3×).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "searchsite.settings")
os.environ.setdefault("VITRINE_TORCH_THREADS", "1")


def shopper_queries(count: int, seed: int = 0) -> list[str]:
    from catalog.demo import COLOURS, KINDS, PATTERNS, all_attributes

    rng = random.Random(f"hybrid-bench-{seed}")
    combos = all_attributes()
    queries = []
    for number in range(count):
        a = rng.choice(combos)
        colour, pattern, kind = COLOURS[a.colour][0], PATTERNS[a.pattern][0], KINDS[a.kind][0]
        form = number % 6
        if form == 0:
            queries.append(a.title.lower())
        elif form == 1:
            queries.append(f"{colour} {kind}s")
        elif form == 2:
            queries.append(f"i want a {colour} {pattern[:-2]}d {kind}")
        elif form == 3:
            queries.append(a.title_zh)
        elif form == 4:
            queries.append("一个" + a.title_zh.replace("条纹", "條紋").replace("色", "色的"))  # traditional, 的
        else:
            queries.append(kind)
    return queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import django

    django.setup()
    from django.test import override_settings

    from benchmarks.common import percentile
    from catalog.models import Product
    from embeddings.commands import index_claim_for_command
    from embeddings.search import SearchQuery, catalog_search

    index_claim_for_command()
    products = Product.objects.count()
    queries = shopper_queries(args.queries)
    ways = {"vectors alone (baseline)": False, "hybrid": True}

    def run(text: str, hybrid: bool) -> float:
        with override_settings(VITRINE_KEYWORD_SEARCH=hybrid):
            started = time.perf_counter()
            catalog_search(SearchQuery(text=text))
            return (time.perf_counter() - started) * 1000

    for text in queries:  # warm-up: model, vocabulary, query vectors cached for both ways
        for hybrid in ways.values():
            run(text, hybrid)
    timings: dict[str, list[float]] = {name: [] for name in ways}
    for round_number in range(args.rounds):
        for number, text in enumerate(queries):
            order = list(ways.items())
            if (number + round_number) % 2:
                order.reverse()
            for name, hybrid in order:
                timings[name].append(run(text, hybrid))

    print(f"{products} products, {len(queries)} queries × {args.rounds} rounds, catalog_search wall time (ms)")
    base = timings["vectors alone (baseline)"]
    for name, values in timings.items():
        print(f"  {name:<26} p50 {percentile(values, 0.5):7.1f}   p95 {percentile(values, 0.95):7.1f}")
    hybrid = timings["hybrid"]
    print(
        f"  hybrid ÷ vectors alone     p50 {percentile(hybrid, 0.5) / percentile(base, 0.5):6.2f}×"
        f"   p95 {percentile(hybrid, 0.95) / percentile(base, 0.95):6.2f}×   (target ≤ 1.3×)"
    )


if __name__ == "__main__":
    main()

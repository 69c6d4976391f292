"""How long the shoppers' search page takes, against a bare encode + index query.

    .venv/bin/python benchmarks/search_page_render.py [--products 600] [--rounds 3] [--queries 60]

Builds the demo shop in a temporary folder (embedded mode, the demo model), then times
60 of the demo's judged text queries (English and Chinese, every group), each one in
every round, in three ways in the same process:

1. bare vector search: encode the text, ask the index for the nearest 24 products;
2. ``catalog_search``: the search engine (nearest ``VITRINE_SEARCH_CANDIDATES``
   products, relevance cutoff, filters, facet counts, sort, one page);
3. the whole page: ``GET /?q=…`` through Django (middleware, form, engine, templates).

The text-vector cache is cleared before every call, so each one encodes its query; the
page is also timed warm (the vector cached, as when a shopper pages or filters).
Prints median and p95 in milliseconds and the ratios against the bare vector search.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import embedded_django, percentile  # noqa: E402 - needs the root on sys.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=60, help="judged text queries used (spread evenly)")
    args = parser.parse_args()

    workdir = embedded_django()
    from django.core.cache import cache
    from django.core.management import call_command
    from django.test import Client

    from embeddings.index import IndexFilters, get_index
    from embeddings.model import get_encoder
    from embeddings.search import SearchQuery, catalog_search

    call_command("migrate", verbosity=0)
    print(f"Building a demo shop of {args.products} products in {workdir} …", flush=True)
    call_command("load_demo_catalog", products=args.products, verbosity=0)
    judgments = Path(os.environ["VITRINE_DATA_DIR"]) / "demo" / "judgments.jsonl"
    judged = [row["query"] for row in map(json.loads, judgments.read_text().splitlines()) if row.get("query")]
    step = max(1, len(judged) // args.queries)
    queries = judged[::step][: args.queries]  # every group and both languages
    encoder, index = get_encoder(), get_index()
    client = Client(HTTP_HOST="127.0.0.1")

    def bare_vector_search(text: str) -> None:
        vector = encoder.texts_encode([text])[0]
        index.query(encoder.space, vector, filters=IndexFilters(), limit=24, offset=0)

    def shopper_service(text: str) -> None:
        catalog_search(SearchQuery(text=text, limit=24))

    def page(text: str) -> None:
        response = client.get("/", {"q": text})
        assert response.status_code == 200, response.status_code

    ways = [
        ("bare vector search (encode + index)", bare_vector_search, True),
        ("catalog_search (cutoff, facets, sort)", shopper_service, True),
        ("search page GET /?q= (cold vector)", page, True),
        ("search page GET /?q= (vector cached)", page, False),
    ]
    for _, run, _ in ways:  # warm up: model, index, templates, calibration
        run(queries[0])
    timings: dict[str, list[float]] = {name: [] for name, _, _ in ways}
    for _ in range(args.rounds):
        for text in queries:
            for name, run, clear in ways:
                if clear:
                    cache.clear()
                started = time.perf_counter()
                run(text)
                timings[name].append((time.perf_counter() - started) * 1000)

    base = statistics.median(timings["bare vector search (encode + index)"])
    print(f"\n{len(queries)} queries × {args.rounds} rounds, {args.products} products, model {encoder.space.id}")
    print(f"{'':40} {'median ms':>10} {'p95 ms':>8} {'× bare':>15}")
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"{name:40} {median:10.1f} {percentile(values, 0.95):8.1f} {median / base:15.2f}")


if __name__ == "__main__":
    main()

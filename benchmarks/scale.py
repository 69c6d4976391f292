"""Search at 1k / 20k / 100k products: the embedded engine against its bare parts, in one run.

    .venv/bin/python benchmarks/scale.py [--sizes 1000 20000 100000] [--queries 60] [--rounds 2]
        [--keep DIR] [--local-max 20000]

For each size, in a process of its own (embedded mode: SQLite, the Edge index, the demo
model, one torch thread as in the tests), the catalog is built through the product's own
services with ``manage.py make_synthetic_catalog`` (one photo per product; with
``--keep DIR`` the catalog built under ``DIR/<size>`` is reused by later runs). Then:

- **open**: closing the index and opening it again, until it can count its points;
- **RSS**: the process's resident memory before the index is opened (Django, the model)
  and after all the queries;
- per query (``--queries`` texts, English and Chinese demo product titles, each one in
  every round), timed wall clock and CPU, one after the other:

  1. ``encode``: the text through the model;
  2. ``numpy exact top-1000``: all the vectors as one float32 matrix, one product, a
     partial sort: the limit a brute-force store could reach;
  3. ``bare engine query``: the index's own nearest-24 query, a vector given,
     unfiltered and with a filter (active products at most the median price);
  4. the same on qdrant-client's local mode (the previous embedded engine) holding the
     same points and payloads, for sizes up to ``--local-max`` (the first
     ``--local-queries`` texts only: it takes seconds a query at 20k). Loaded and timed
     after everything else: measured before them, with its 20k points' Python objects
     in memory, it slowed them (API search at 20k: 47 ms instead of 29);
  5. ``catalog_search``: the engine behind every face, text with the price filter and
     the category, brand, price and colour facets;
  6. ``API search``: ``POST /api/v1/search`` with the same filter and facets through
     Django's test client (the whole Django stack, no socket);
  7. ``page``: ``GET /?q=…&price_max=…`` (the shoppers' search page).

  The query-vector cache is cleared before 5–7, so each of them encodes its text.

Prints p50 and p95 per way and size, and the ratios the targets are stated in: API p50
against the bare filtered engine query, and against encode + that query. Also the recall
of the bare unfiltered query's 24 against the exact 24.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import percentile  # noqa: E402 - needs the root on sys.path


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_one(size: int, data_dir: Path, queries_count: int, rounds: int, local_max: int, local_queries: int) -> dict:
    os.environ["VITRINE_DATA_DIR"] = str(data_dir)
    for name in ("CELERY_BROKER_URL", "QDRANT_URL", "DATABASE_URL", "CACHE_URL", "VITRINE_INDEX_ENGINE"):
        os.environ.pop(name, None)
    os.environ.setdefault("VITRINE_TORCH_THREADS", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "searchsite.settings")
    os.environ.setdefault("LOG_LEVEL", "warning")

    import django

    django.setup()
    import numpy as np
    from django.core.cache import cache
    from django.core.management import call_command
    from django.test import Client

    from api.keys import api_key_create
    from catalog.demo import all_attributes
    from catalog.models import Product
    from embeddings.index import IndexFilters, get_index, reset_index
    from embeddings.index.base import ImagePoint
    from embeddings.model import get_encoder
    from embeddings.search import SearchQuery, catalog_search
    from embeddings.search.types import FacetFilters

    result: dict = {"size": size}
    call_command("migrate", verbosity=0)
    if Product.objects.count() < size:
        started = time.perf_counter()
        call_command("make_synthetic_catalog", products=size, verbosity=0)
        result["build_s"] = time.perf_counter() - started
    encoder = get_encoder()
    space = encoder.space
    reset_index()
    result["rss_before_index_mb"] = rss_mb()
    started = time.perf_counter()
    index = get_index()
    points = index.count(space)
    result["open_s"] = time.perf_counter() - started
    result["points"] = points

    image_ids = sorted(index.image_ids(space))
    vectors: dict[int, np.ndarray] = {}
    for start in range(0, len(image_ids), 2000):
        vectors.update(index.vectors(space, image_ids[start : start + 2000]))
    ids = np.array(image_ids)
    matrix = np.stack([vectors[i] for i in image_ids]).astype(np.float32)

    prices = sorted(Product.objects.values_list("price", flat=True))
    median_price = prices[len(prices) // 2]
    unfiltered = IndexFilters(active=None)
    filtered = IndexFilters(active=True, price_max=median_price)
    facets = ["category", "brand", "price", "tags.colour"]

    kinds = all_attributes()
    step = max(1, len(kinds) // queries_count)
    texts = [
        kind.title.lower() if number % 2 == 0 else kind.title_zh
        for number, kind in enumerate(kinds[::step][:queries_count])
    ]
    query_vectors = {text: encoder.texts_encode([text])[0] for text in texts}

    key = api_key_create(name="scale benchmark", scopes=["search"], rate="1000000/second").key
    client = Client(HTTP_HOST="127.0.0.1")
    api_body = {"text": "", "filters": {"price_max": str(median_price)}, "facets": facets, "limit": 24}

    def exact(text: str) -> list[int]:
        scores = matrix @ query_vectors[text]
        top = np.argpartition(-scores, min(1000, len(scores) - 1))[:1000]
        return ids[top[np.argsort(-scores[top])]].tolist()

    def nearest(store, text: str, filters) -> None:
        store.candidates(space, query_vectors[text], limit=24, filters=filters)

    def api(text: str) -> None:
        response = client.post(
            "/api/v1/search",
            {**api_body, "text": text},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {key}",
        )
        assert response.status_code == 200, response.content[:300]

    def page(text: str) -> None:
        response = client.get("/", {"q": text, "price_max": str(median_price)})
        assert response.status_code == 200, response.status_code

    ways = [
        ("encode", lambda t: encoder.texts_encode([t]), False),
        ("numpy exact top-1000", exact, False),
        (
            "bare engine query, unfiltered",
            lambda t: index.candidates(space, query_vectors[t], limit=24, filters=unfiltered),
            False,
        ),
        (
            "bare engine query, filtered",
            lambda t: index.candidates(space, query_vectors[t], limit=24, filters=filtered),
            False,
        ),
    ]
    ways += [
        (
            "catalog_search (filter, facets)",
            lambda t: catalog_search(
                SearchQuery(text=t, filters=FacetFilters(price_max=median_price), facet_attributes=("colour",))
            ),
            True,
        ),
        ("API POST /api/v1/search (filter, facets)", api, True),
        ("page GET /?q=&price_max=", page, True),
    ]
    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}

    def timed(ways: list, queries: list[str]) -> None:
        for _, run, _ in ways:  # warm up
            cache.clear()
            run(queries[0])
        for name, _, _ in ways:
            wall[name], cpu[name] = [], []
        for _ in range(rounds):
            for text in queries:
                for name, run, clear in ways:
                    if clear:
                        cache.clear()
                    started, started_cpu = time.perf_counter(), time.process_time()
                    run(text)
                    cpu[name].append((time.process_time() - started_cpu) * 1000)
                    wall[name].append((time.perf_counter() - started) * 1000)

    timed(ways, texts)
    recalls = []
    for text in texts:
        truth = set(exact(text)[:24])
        found = {c.image_id for c in index.candidates(space, query_vectors[text], limit=24, filters=unfiltered)}
        recalls.append(len(truth & found) / len(truth))
    result["recall_at_24"] = statistics.mean(recalls)
    result["rss_after_mb"] = rss_mb()
    local = None
    if size <= local_max:
        # Last, in the same process: its millions of Python objects would slow the rest.
        def local_load():
            from embeddings.index.server import local_index_open

            local_path = Path(tempfile.mkdtemp(prefix="vitrine-local-"))
            local = local_index_open(local_path)
            started = time.perf_counter()
            for start in range(0, len(image_ids), 1000):
                chunk = image_ids[start : start + 1000]
                payloads = index.payloads(space, chunk)
                local.upsert(
                    space,
                    [
                        ImagePoint(
                            image_id=i, product_id=payloads[i]["product_id"], vector=vectors[i], payload=payloads[i]
                        )
                        for i in chunk
                    ],
                )
            result["local_load_s"] = time.perf_counter() - started
            local.close()
            started = time.perf_counter()
            local = local_index_open(local_path)
            local.count(space)
            result["local_open_s"] = time.perf_counter() - started
            return local

        local = local_load()
        timed(
            [
                ("local mode query, unfiltered", lambda t: nearest(local, t, unfiltered), False),
                ("local mode query, filtered", lambda t: nearest(local, t, filtered), False),
            ],
            texts[:local_queries],
        )
    result["ways"] = {
        name: {
            "p50": statistics.median(wall[name]),
            "p95": percentile(wall[name], 0.95),
            "cpu_p50": statistics.median(cpu[name]),
        }
        for name in wall
    }
    result["queries"] = len(texts) * rounds
    result["model"] = space.id
    if local is not None:
        local.close()
    return result


def report(results: list[dict]) -> None:
    for result in results:
        size = result["size"]
        points, queries = result["points"], result["queries"]
        print(f"\n== {size:,} products ({points:,} points), model {result['model']}, {queries} queries")
        if "build_s" in result:
            print(f"   built in {result['build_s']:.0f} s ({size / result['build_s']:.0f} products/s, photos included)")
        line = f"   index open {result['open_s'] * 1000:.0f} ms"
        if "local_open_s" in result:
            line += f" (local mode {result['local_open_s'] * 1000:.0f} ms)"
        print(line)
        print(
            f"   RSS {result['rss_before_index_mb']:.0f} MB before the index, "
            f"{result['rss_after_mb']:.0f} MB after the queries; "
            f"recall@24 of the engine's unfiltered query vs exact {result['recall_at_24']:.3f}"
        )
        ways = result["ways"]
        bare = ways["bare engine query, filtered"]["p50"]
        encode_bare = ways["encode"]["p50"] + bare
        print(f"   {'':42} {'p50 ms':>8} {'p95 ms':>8} {'CPU p50':>8} {'× bare':>7} {'× enc+bare':>10}")
        for name, figures in ways.items():
            print(
                f"   {name:42} {figures['p50']:8.2f} {figures['p95']:8.2f} {figures['cpu_p50']:8.2f} "
                f"{figures['p50'] / bare:7.2f} {figures['p50'] / encode_bare:10.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 20000, 100000])
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the catalogs under this folder")
    parser.add_argument("--local-max", type=int, default=20000, help="largest size also measured on local mode")
    parser.add_argument("--local-queries", type=int, default=10, help="queries timed on local mode (it is slow)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        result = measure_one(args.one, args.data_dir, args.queries, args.rounds, args.local_max, args.local_queries)
        print("RESULT " + json.dumps(result), flush=True)
        return

    base = args.keep or Path(tempfile.mkdtemp(prefix="vitrine-scale-"))
    results = []
    for size in args.sizes:
        data_dir = base / str(size)
        print(f"{size:,} products in {data_dir} …", flush=True)
        command = [
            sys.executable,
            __file__,
            "--one",
            str(size),
            "--data-dir",
            str(data_dir),
            "--queries",
            str(args.queries),
            "--rounds",
            str(args.rounds),
            "--local-max",
            str(args.local_max),
            "--local-queries",
            str(args.local_queries),
        ]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(output.split("RESULT ", 1)[1]))
        report(results[-1:])
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

"""How long the integration API takes, against the bare services it calls, all in one run.

    .venv/bin/python benchmarks/api_requests.py [--products 200] [--rounds 3] [--queries 60]
        [--bulk-products 1000] [--batch-sizes 100 500]

Builds the demo shop in a temporary folder (embedded mode, the demo model), makes an API
key (scopes search and catalog:write, a rate too high to throttle) and starts gunicorn
(``searchsite.wsgi``, one sync worker, as the Dockerfile runs it) on a free port of
127.0.0.1, with the same environment. The embedded vector store can be opened by one
process only, so the server gets a copy of it, made after the shop was indexed.

1. Search: the demo's judged text queries (English and Chinese, every group), each one in
   every round, two ways each, one after the other:

   - ``catalog_search``, in this process: the service the API calls, with the query the
     API builds from the request;
   - ``POST /api/v1/search`` with ``{"text": q}`` over HTTP (http.client; the client's
     JSON encoding and decoding counted);

   and the same again with a price filter (at most the shop's median price) and the
   category, brand and price facets. Every call encodes its text: each one sends a
   spelling of its query never sent before (some characters written as HTML character
   references, which the model's tokenizer decodes: the same vectors and the same results,
   checked) so the query-vector cache, the server's or this process's, never has it.

2. Bulk upsert: for each batch size, ``--bulk-products`` new products (demo products, no
   photos) sent as ``POST /api/v1/bulk/products`` requests of a batch each, three times:
   all created, the same body again (all unchanged), then with new titles and prices (all
   updated). The baseline writes the same products with ``product_upsert`` in
   a loop, one ``transaction.atomic()`` per batch, in this process (no index sync: the
   API also refreshes the index payload of each updated product after the commit).

Prints median and p95 in milliseconds and the ratio against the bare service for the
searches, products per second and the share of the bare rate for the bulk upserts.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import embedded_django, percentile  # noqa: E402 - needs the root on sys.path


def spelling(text: str, number: int) -> str:
    """The ``number``-th spelling of ``text`` (0: as it is): each character as it is, or as
    a decimal or a hexadecimal HTML character reference, by the base-3 digits of ``number``."""
    chars = []
    for char in text:
        number, form = divmod(number, 3)
        chars.append(char if form == 0 else f"&#{ord(char)};" if form == 1 else f"&#x{ord(char):x};")
    if number:
        raise ValueError(f"{text!r} has too few spellings for this many rounds")
    return "".join(chars)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=200, help="demo shop size (about 0.5 s each to build)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=60, help="judged text queries used (spread evenly)")
    parser.add_argument("--bulk-products", type=int, default=1000, help="products upserted per batch size")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 500], help="products per bulk request")
    args = parser.parse_args()

    workdir = embedded_django()
    import numpy as np
    from django.conf import settings
    from django.core.management import call_command
    from django.db import transaction

    from api.keys import api_key_create
    from catalog import services
    from catalog.demo import demo_products
    from catalog.models import Product
    from embeddings.index import reset_index
    from embeddings.model import get_encoder
    from embeddings.search import FacetFilters, SearchQuery, catalog_search

    too_big = [size for size in args.batch_sizes if size > settings.VITRINE_API_BULK_MAX]
    if too_big:
        parser.error(f"--batch-sizes {too_big} exceed VITRINE_API_BULK_MAX ({settings.VITRINE_API_BULK_MAX})")

    call_command("migrate", verbosity=0)
    print(f"Building a demo shop of {args.products} products in {workdir} …", flush=True)
    call_command("load_demo_catalog", products=args.products, verbosity=0)
    judgments = Path(os.environ["VITRINE_DATA_DIR"]) / "demo" / "judgments.jsonl"
    judged = [row["query"] for row in map(json.loads, judgments.read_text().splitlines()) if row.get("query")]
    step = max(1, len(judged) // args.queries)
    queries = judged[::step][: args.queries]  # every group and both languages
    prices = [p for p in Product.objects.values_list("price", flat=True) if p is not None]
    price_max = statistics.median(prices).quantize(Decimal("0.01"))
    key = api_key_create(name="benchmark", scopes=["search", "catalog:write"], rate="1000000/second").key
    encoder = get_encoder()

    # Warm-up spelling 0; then, per round, 1 + 2r for the text search, 2 + 2r with filters.
    spellings = {q: [spelling(q, n) for n in range(2 * args.rounds + 1)] for q in queries}
    for query, texts in spellings.items():
        # The same vectors (whichever backend: open_clip or transformers), so each
        # spelling is the same search.
        vectors = encoder.texts_encode([query, *texts])
        assert np.allclose(vectors[1:], vectors[0], atol=1e-6), f"a spelling of {query!r} encodes differently"

    reset_index()  # let go of the embedded vector store while it is copied for the server
    server_index = workdir / "index-server"
    shutil.copytree(settings.VITRINE_INDEX_PATH, server_index)
    port = free_port()
    server_log = (workdir / "gunicorn.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "searchsite.wsgi", "--chdir", str(ROOT)]
        + ["--bind", f"127.0.0.1:{port}", "--workers", "1", "--timeout", "120"],
        cwd=ROOT,
        env={**os.environ, "VITRINE_INDEX_PATH": str(server_index)},
        stdout=server_log,
        stderr=subprocess.STDOUT,
    )
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

        def api(method: str, path: str, body: dict | None = None) -> dict:
            payload = None if body is None else json.dumps(body)
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            data = response.read()
            assert response.status == 200, (response.status, data[:500])
            return json.loads(data)

        print(f"Starting gunicorn on 127.0.0.1:{port} …", flush=True)
        deadline = time.monotonic() + 120
        while True:
            try:
                api("GET", "/api/v1/health")
                break
            except (ConnectionError, http.client.HTTPException, AssertionError):
                connection.close()
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"gunicorn did not start; see {workdir / 'gunicorn.log'}") from None
                time.sleep(0.2)

        # --- Search --------------------------------------------------------------------
        filtered_body = {"facets": ["category", "brand", "price"], "filters": {"price_max": f"{price_max}"}}

        def bare_text(text: str) -> list[str]:
            page = catalog_search(SearchQuery(text=text, active=True, facet_attributes=(), limit=20))
            return [hit.product.external_id for hit in page.hits]

        def api_text(text: str) -> list[str]:
            return [hit["external_id"] for hit in api("POST", "/api/v1/search", {"text": text})["results"]]

        def bare_filtered(text: str) -> list[str]:
            filters = FacetFilters(price_max=price_max)
            page = catalog_search(SearchQuery(text=text, filters=filters, active=True, facet_attributes=(), limit=20))
            return [hit.product.external_id for hit in page.hits]

        def api_filtered(text: str) -> list[str]:
            body = api("POST", "/api/v1/search", {"text": text, **filtered_body})
            return [hit["external_id"] for hit in body["results"]]

        filtered = f"price ≤ {price_max}, 3 facets"
        ways = [  # (name, its bare counterpart, run, spelling offset)
            ("catalog_search (bare service)", None, bare_text, 1),
            ("POST /api/v1/search", "catalog_search (bare service)", api_text, 1),
            (f"catalog_search, {filtered}", None, bare_filtered, 2),
            (f"POST /api/v1/search, {filtered}", f"catalog_search, {filtered}", api_filtered, 2),
        ]
        for query in queries[:5]:  # warm up: model, index, connections, calibration
            for _, _, run, _ in ways:
                run(spellings[query][0])
        print(f"Timing {len(ways) * len(queries) * args.rounds} searches …", flush=True)
        timings: dict[str, list[float]] = {name: [] for name, _, _, _ in ways}
        differing = 0
        for round_number in range(args.rounds):
            for query in queries:
                results = []
                for name, _, run, offset in ways:
                    text = spellings[query][2 * round_number + offset]
                    started = time.perf_counter()
                    results.append(run(text))
                    timings[name].append((time.perf_counter() - started) * 1000)
                differing += (results[0] != results[1]) + (results[2] != results[3])

        print(f"\n{len(queries)} queries × {args.rounds} rounds, {args.products} products, model {encoder.space.id}")
        print("API: gunicorn searchsite.wsgi, 1 sync worker (a new connection per request: sync workers close")
        print("each); bare: catalog_search in this process.")
        print("Vector cache cold: every call sends a spelling of its query not sent before, so every call encodes.")
        print(f"{'':46} {'median ms':>10} {'p95 ms':>8} {'× bare':>8}")
        for name, bare, _, _ in ways:
            values = timings[name]
            median = statistics.median(values)
            ratio = median / statistics.median(timings[bare]) if bare else 1.0
            print(f"{name:46} {median:10.1f} {percentile(values, 0.95):8.1f} {ratio:8.2f}")
        calls = len(queries) * args.rounds * 2
        print(f"Same results from the API and the bare service: {calls - differing}/{calls} calls")

        # --- Bulk upsert ---------------------------------------------------------------
        specs = demo_products(count=args.bulk_products, seed=31, images_per_product=(1, 1))

        def products(side: str, size: int, version: int) -> list[dict]:
            return [
                {
                    "external_id": f"bench-{side}-{size}-{number:05d}",
                    "title": spec.title if version == 1 else f"{spec.title} (v{version})",
                    "description": spec.description,
                    "price": f"{spec.price + version - 1:.2f}",
                    "currency": "EUR",
                    "category": spec.category,
                    "brand": spec.brand,
                    "attributes": {"colour": spec.attributes.colour, "pattern": spec.attributes.pattern},
                }
                for number, spec in enumerate(specs)
            ]

        def api_bulk(items: list[dict], size: int, expected: str) -> float:
            started = time.perf_counter()
            for start in range(0, len(items), size):
                body = api("POST", "/api/v1/bulk/products", {"products": items[start : start + size]})
                assert body["summary"][expected] == len(items[start : start + size]), body["summary"]
            return len(items) / (time.perf_counter() - started)

        def bare_bulk(items: list[dict], size: int, expected: str) -> float:
            outcomes = {"created": 0, "updated": 0, "unchanged": 0}
            started = time.perf_counter()
            for start in range(0, len(items), size):
                with transaction.atomic():
                    for item in items[start : start + size]:
                        # The fields as the API's serializer gives them (its defaults included).
                        values = {**item, "price": Decimal(item["price"]), "url": "", "is_active": True}
                        result = services.product_upsert(**values)
                        if result.is_created:
                            outcomes["created"] += 1
                        else:
                            outcomes["updated" if result.changed_fields else "unchanged"] += 1
            rate = len(items) / (time.perf_counter() - started)
            assert outcomes[expected] == len(items), outcomes
            return rate

        print(f"\nTiming bulk upserts of {args.bulk_products} products per batch size …", flush=True)
        rows = []
        for size in args.batch_sizes:
            for version, expected in ((1, "created"), (1, "unchanged"), (2, "updated")):
                api_rate = api_bulk(products("api", size, version), size, expected)
                bare_rate = bare_bulk(products("bare", size, version), size, expected)
                rows.append((expected, size, bare_rate, api_rate))
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        server_log.close()

    print(f"\nBulk upsert, {args.bulk_products} products per row (demo products, no photos)")
    print("API: POST /api/v1/bulk/products; bare: product_upsert in a loop, one transaction per batch.")
    print(f"{'':10} {'batch':>6} {'bare products/s':>16} {'API products/s':>15} {'of bare':>8}")
    for expected, size, bare_rate, api_rate in rows:
        print(f"{expected:10} {size:6} {bare_rate:16.0f} {api_rate:15.0f} {api_rate / bare_rate:8.2f}")


if __name__ == "__main__":
    main()

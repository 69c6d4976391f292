"""What recording search analytics costs a search: the search page's latency with
``VITRINE_ANALYTICS`` on ÷ off, in the same process, on the same catalog.

    .venv/bin/python benchmarks/analytics_cost.py [--products 150] [--rounds 5] [--queries 40]

Builds the demo shop in a temporary folder (embedded mode, the demo model), then times
``GET /?q=…`` through Django for judged text queries (English and Chinese), each one with
analytics on and off in turn (the order alternating, so drift and warm caches favour
neither). The query vectors are cached after the warm-up, so the page is timed at its
fastest: the analytics' share is then the largest it can be. With analytics on, the rows
go through the real buffer and background writer (analytics.recorder), which keeps
writing while pages are timed. Prints median and p95 in milliseconds, the ratio of the
medians (target ≤ 1.05), and the rows written.
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
    parser.add_argument("--products", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=40, help="judged text queries used (spread evenly)")
    args = parser.parse_args()

    workdir = embedded_django()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    from analytics import recorder
    from analytics.models import SearchRecord

    call_command("migrate", verbosity=0)
    print(f"Building a demo shop of {args.products} products in {workdir} …", flush=True)
    started = time.perf_counter()
    call_command("load_demo_catalog", products=args.products, verbosity=0)
    print(f"Built in {time.perf_counter() - started:.0f} s", flush=True)
    judgments = Path(os.environ["VITRINE_DATA_DIR"]) / "demo" / "judgments.jsonl"
    judged = [row["query"] for row in map(json.loads, judgments.read_text().splitlines()) if row.get("query")]
    step = max(1, len(judged) // args.queries)
    queries = judged[::step][: args.queries]
    client = Client(HTTP_HOST="127.0.0.1")

    def page(text: str) -> float:
        started = time.perf_counter()
        response = client.get("/", {"q": text})
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, response.status_code
        return elapsed

    for text in queries:  # warm up: model, index, templates, calibration, every query's vector
        page(text)
    recorder.flush()
    before = SearchRecord.objects.count()
    timings: dict[bool, list[float]] = {True: [], False: []}
    for round_number in range(args.rounds):
        for number, text in enumerate(queries):
            order = (True, False) if (round_number + number) % 2 == 0 else (False, True)
            for enabled in order:
                settings.VITRINE_ANALYTICS = enabled
                timings[enabled].append(page(text))
    settings.VITRINE_ANALYTICS = True
    time.sleep(recorder.FLUSH_SECONDS * 2)  # the writer's last batch
    recorder.flush()
    written = SearchRecord.objects.count() - before

    print(f"\n{len(queries)} queries × {args.rounds} rounds, {args.products} products, search page GET /?q= (warm)")
    print(f"{'':16} {'median ms':>10} {'p95 ms':>8}")
    for enabled, label in ((False, "analytics off"), (True, "analytics on")):
        values = timings[enabled]
        print(f"{label:16} {statistics.median(values):10.2f} {percentile(values, 0.95):8.2f}")
    ratio = statistics.median(timings[True]) / statistics.median(timings[False])
    print(f"on ÷ off (medians): {ratio:.3f}  (target ≤ 1.05)")
    print(f"rows written while timed: {written} of {len(timings[True])} searches with analytics on")


if __name__ == "__main__":
    main()

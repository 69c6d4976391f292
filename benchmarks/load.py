"""Shoppers at once: the search page under a closed-loop load, against the bare search.

    .venv/bin/python benchmarks/load.py [--users 20] [--seconds 60] [--workers 1] [--threads 4]
        [--products 600] [--think 0]
    bash scripts/with-postgres .venv/bin/python benchmarks/load.py …   # on PostgreSQL, as compose

Builds the demo shop in a temporary folder, starts redis-server for the cache (as compose
does: throttling counts and query vectors shared between processes), and gunicorn
(``searchsite.wsgi``, the given workers × threads, one torch thread per process, as
compose's web). More than one worker shares the store through ``manage.py serve_index``
(the only multi-process set-up without a Qdrant server).

Each user, in a thread of this process, loops without pause (``--think`` adds one) over
the mix the issue measured: 45 % text searches (the demo's judged phrasings, English and
Chinese), 20 % facet clicks (a search with a colour, pattern or price filter), 15 %
product pages, 15 % thumbnails, 5 % photo searches (a product photo posted to the page,
CSRF token and all). Every request must answer 200 (a photo search's redirect counts).

The baseline, measured in the same run before the server starts: ``catalog_search``
called in this process on the same phrasings (encoding included), one at a time. Prints
requests per second, p50 / p95 / p99 per kind and overall, the errors, and p95 ÷ the
bare search's p50.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import percentile  # noqa: E402 - needs the root on sys.path

MIX = [("search", 45), ("facet", 20), ("product", 15), ("thumbnail", 15), ("photo", 5)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, process: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} stopped; see {log}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not start; see {log}")


class User(threading.Thread):
    def __init__(self, number: int, port: int, plan: dict, until: float, think: float, results: list):
        super().__init__(daemon=True)
        self.random = random.Random(number)
        self.port = port
        self.plan = plan
        self.until = until
        self.think = think
        self.results = results
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookie = ""
        self.token = ""

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        headers = dict(headers or {})
        if self.cookie:
            headers["Cookie"] = self.cookie
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            return 0, b"", {}
        return response.status, data, dict(response.getheaders())

    def start_session(self) -> None:
        status, page, headers = self.request("GET", "/")
        cookie = re.search(r"csrftoken=([^;]+)", headers.get("Set-Cookie", ""))
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if status != 200 or not cookie or not token:
            raise SystemExit(f"the search page gave no CSRF token (HTTP {status})")
        self.cookie = f"csrftoken={cookie.group(1)}"
        self.token = token.group(1).decode()

    def action(self, kind: str) -> tuple[int, float]:
        plan, pick = self.plan, self.random.choice
        started = time.perf_counter()
        if kind == "search":
            status, _, _ = self.request("GET", "/?" + urlencode({"q": pick(plan["queries"])}))
        elif kind == "facet":
            name, value = pick(plan["facets"])
            status, _, _ = self.request("GET", "/?" + urlencode({"q": pick(plan["queries"]), name: value}))
        elif kind == "product":
            status, _, _ = self.request("GET", f"/products/{pick(plan['products'])}/")
        elif kind == "thumbnail":
            status, _, _ = self.request("GET", pick(plan["thumbnails"]))
        else:
            boundary = uuid.uuid4().hex
            body = (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="csrfmiddlewaretoken"\r\n\r\n'
                    f"{self.token}\r\n"
                    f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="q.jpg"\r\n'
                    "Content-Type: image/jpeg\r\n\r\n"
                ).encode()
                + pick(plan["photos"])
                + f"\r\n--{boundary}--\r\n".encode()
            )
            headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Referer": "http://127.0.0.1/"}
            status, _, _ = self.request("POST", "/", body=body, headers=headers)
            status = 200 if status in (302, 303) else status
        return status, time.perf_counter() - started

    def run(self) -> None:
        kinds = [kind for kind, weight in MIX for _ in range(weight)]
        while time.monotonic() < self.until:
            kind = self.random.choice(kinds)
            status, seconds = self.action(kind)
            self.results.append((kind, status, seconds))
            if self.think:
                time.sleep(self.random.uniform(0, 2 * self.think))


def summary(name: str, seconds: list[float]) -> str:
    if not seconds:
        return f"{name:<10} none"
    return (
        f"{name:<10} {len(seconds):>6}  p50 {1000 * percentile(seconds, 0.5):7.1f} ms  "
        f"p95 {1000 * percentile(seconds, 0.95):7.1f} ms  p99 {1000 * percentile(seconds, 0.99):7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=1, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--products", type=int, default=600)
    parser.add_argument("--think", type=float, default=0.0, help="mean pause between a user's requests (s)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="vitrine-load-"))
    os.environ.update(
        VITRINE_DATA_DIR=str(workdir / "data"),
        DJANGO_SETTINGS_MODULE="searchsite.settings",
        LOG_LEVEL=os.environ.get("LOG_LEVEL", "warning"),
        VITRINE_TORCH_THREADS="1",
        VITRINE_PHOTO_SEARCH_RATE="1000000/minute",
    )
    for name in ("CELERY_BROKER_URL", "QDRANT_URL", "VITRINE_INDEX_SERVER"):
        os.environ.pop(name, None)
    if os.environ.get("DATABASE_URL"):  # a deployment: DEBUG off; plain http on loopback
        os.environ.update(SECRET_KEY="load-" + uuid.uuid4().hex * 2, VITRINE_HTTPS="0", ALLOWED_HOSTS="127.0.0.1")
    redis_port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    os.environ["CACHE_URL"] = f"redis://127.0.0.1:{redis_port}/1"
    processes = [redis]
    try:
        run(args, workdir, processes)
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def run(args, workdir: Path, processes: list) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from catalog.models import Product, ProductImage
    from embeddings.index import reset_index
    from embeddings.search import SearchQuery, catalog_search

    call_command("migrate", verbosity=0)
    print(f"Building a demo shop of {args.products} products in {workdir} …", flush=True)
    call_command("load_demo_catalog", products=args.products, verbosity=0)
    judgments = Path(settings.DATA_DIR) / "demo" / "judgments.jsonl"
    queries = sorted({row["query"] for row in map(json.loads, judgments.read_text().splitlines()) if row.get("query")})
    images = list(ProductImage.objects.filter(state="indexed").order_by("pk"))
    plan = {
        "queries": queries,
        "facets": [("colour", c) for c in ("red", "blue", "green", "black")]
        + [("pattern", p) for p in ("striped", "dotted")]
        + [("price_max", "50")],
        "products": list(Product.objects.filter(is_active=True).values_list("pk", flat=True)),
        "thumbnails": [image.thumbnail_url for image in images],
        "photos": [image.file.open("rb").read() for image in images[:: max(1, len(images) // 40)]],
    }

    # The bare search, in this process: the engine the page calls, one query at a time.
    rng = random.Random(7)
    for query in queries[:5]:
        catalog_search(SearchQuery(text=query, limit=24))
    bare = []
    for query in rng.sample(queries, min(200, len(queries))):
        started = time.perf_counter()
        catalog_search(SearchQuery(text=query + " ", limit=24))
        bare.append(time.perf_counter() - started)
    reset_index()  # the server process opens the store now

    environment = dict(os.environ)
    if args.workers > 1:
        index_port = free_port()
        environment["VITRINE_INDEX_SERVER"] = f"127.0.0.1:{index_port}"
        log = workdir / "index-server.log"
        index = subprocess.Popen(
            [sys.executable, "manage.py", "serve_index"],
            cwd=ROOT,
            env=environment,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        processes.append(index)
        wait_port(index_port, index, "the index server", log)
    port = free_port()
    log = workdir / "gunicorn.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "searchsite.wsgi", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", str(args.workers), "--threads", str(args.threads), "--timeout", "120"],
        cwd=ROOT,
        env=environment,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    processes.append(server)
    wait_port(port, server, "gunicorn", log)

    warm = User(-1, port, plan, 0, 0, [])
    warm.start_session()
    for kind in ("search", "facet", "product", "thumbnail", "photo") * (4 * args.workers):
        warm.action(kind)
    for thumbnail in plan["thumbnails"]:  # made on first request, then files: time the serving
        warm.request("GET", thumbnail)

    print(f"{args.users} users for {args.seconds:g} s against {args.workers} worker(s) × {args.threads} threads …")
    results: list = []
    until = time.monotonic() + args.seconds
    users = [User(n, port, plan, until, args.think, results) for n in range(args.users)]
    for user in users:
        user.start_session()
    started = time.monotonic()
    for user in users:
        user.start()
    for user in users:
        user.join()
    elapsed = time.monotonic() - started

    errors = [(kind, status) for kind, status, _ in results if status != 200]
    every = [seconds for _, _, seconds in results]
    print(f"\n{len(results)} requests in {elapsed:.1f} s: {len(results) / elapsed:.1f} req/s; errors: {len(errors)}")
    if errors:
        print("  ", sorted({f"{kind} {status}" for kind, status in errors}))
    print(summary("all", every))
    for kind, _ in MIX:
        print(summary(kind, [seconds for k, _, seconds in results if k == kind]))
    print(summary("bare", bare) + "   (catalog_search in-process, one at a time)")
    ratio = percentile(every, 0.95) / percentile(bare, 0.5)
    print(f"\np95 under load ÷ bare search p50: {ratio:.1f}×  (target: p95 ≤ 300 ms)")


if __name__ == "__main__":
    main()

"""The chaos suite: Vitrine as a deployment runs it (PostgreSQL, redis-server with its
append-only file, gunicorn, a Celery worker and beat, the index server holding the
store), with each dependency broken mid-ingest:

- PostgreSQL stopped for 20 s;
- Redis stopped gracefully, killed with SIGKILL, and started again, or frozen (SIGSTOP)
  and thawed;
- the index server frozen (SIGSTOP: it still accepts connections, it never answers) 16 s.

Each asserts that nothing is lost or duplicated (every upload answered 201 ends as one
indexed image), within a bound, and that every request during the outage was answered
in time and never with a 500: 503 with Retry-After where the dependency is needed (the
database for everything, the index for searches), the normal answer where Vitrine can do
without it (Redis: uploads wait in the outbox, the cache and the throttle fail open).
A worker killed mid-batch is ``test_end_to_end``'s. Figures go to stdout (``-s``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests import images
from tests.test_end_to_end import Deployment, free_port, wait_for

pytestmark = [pytest.mark.live, pytest.mark.xdist_group("chaos")]

BUDGET_SECONDS = 10  # no request may take longer, outage or not
RECOVERY_SECONDS = 240  # every image leaves pending within this after the dependency is back
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)


def as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class Postgres:
    def __init__(self, workdir: Path):
        self.dir = workdir
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(workdir, "postgres")
        subprocess.run(
            as_postgres([str(PG_BIN / "initdb"), "-D", str(workdir / "data"), "-U", "vitrine", "--auth=trust"]),
            check=True,
            capture_output=True,
        )
        self.url = f"postgres://vitrine@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            as_postgres(
                [str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w"]
                + ["-o", options, "start"]
            ),
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        subprocess.run(
            as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop"]),
            check=True,
            capture_output=True,
        )

    def query(self, sql: str) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url, connect_timeout=5) as connection:
            return connection.execute(sql).fetchall()


class Redis:
    def __init__(self, workdir: Path):
        self.dir = workdir
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--appendonly", "yes"]
            + ["--save", "", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis(port=self.port, socket_timeout=1)
        wait_for(lambda: _pings(client), "redis-server to answer", timeout=30)

    def stop(self, sig: int) -> None:
        self.process.send_signal(sig)
        self.process.wait(timeout=30)


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - not up yet
        return False


class Stack(Deployment):
    def __init__(self, data_dir: Path, postgres: Postgres, redis: Redis):
        super().__init__(data_dir, f"redis://127.0.0.1:{redis.port}/0")
        self.postgres = postgres
        self.redis = redis
        self.env.update(
            DEBUG="0",
            SECRET_KEY="chaos-" + uuid.uuid4().hex * 2,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            VITRINE_HTTPS="0",
            DATABASE_URL=postgres.url,
            CACHE_URL=f"redis://127.0.0.1:{redis.port}/1",
            CELERY_BROKER_VISIBILITY_TIMEOUT="30",
            VITRINE_OUTBOX_SECONDS="2",
            VITRINE_RECONCILE_MINUTES="1",
            VITRINE_STALE_PENDING_SECONDS="20",
            VITRINE_DATABASE_CONNECT_TIMEOUT="2",
            # 4 s, not the default 1 s: on a two-core machine running the browser tests
            # beside this one, a healthy index server answered a page's query in over 1 s,
            # then (CI, December) in over 2 s: a 503 during the Redis scenario, which is
            # not about the index. A hung index still answers 503 well within the budget.
            VITRINE_INDEX_READ_TIMEOUT="4",
            VITRINE_INDEX_BREAKER_SECONDS="3",
            QDRANT_TIMEOUT="3",
            VITRINE_API_RATE="100000/minute",
            VITRINE_TORCH_THREADS="1",
        )

    def start_worker_and_beat(self) -> None:
        for name, command in (
            ("worker", ["worker", "-Q", "embeddings,maintenance", "--pool", "solo", "--hostname", "chaos@%h"]),
            ("beat", ["beat", "--schedule", str(self.data_dir / "beat-schedule")]),
        ):
            self.spawn(name, ["-m", "celery", "-A", "searchsite", *command, "--loglevel", "INFO"])

    def call(self, method: str, path: str, *, body: bytes | None = None, content_type: str = "", key: bool = True):
        """(status, seconds, headers): never raises on an HTTP status."""
        request = urllib.request.Request(self.web_url + path, data=body, method=method)
        if key and self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        if content_type:
            request.add_header("Content-Type", content_type)
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=BUDGET_SECONDS * 3) as response:
                response.read()
                return response.status, time.monotonic() - started, response.headers
        except urllib.error.HTTPError as error:
            error.read()
            return error.code, time.monotonic() - started, error.headers

    def upload_call(self, external_id: str, content: bytes):
        boundary = uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.jpg"\r\n'
                "Content-Type: image/jpeg\r\n\r\n"
            ).encode()
            + content
            + f"\r\n--{boundary}--\r\n".encode()
        )
        return self.call(
            "POST",
            f"/api/v1/products/{external_id}/images",
            body=body,
            content_type=f"multipart/form-data; boundary={boundary}",
        )

    def products(self, prefix: str, count: int) -> list[str]:
        ids = [f"{prefix}-{number:02d}" for number in range(count)]
        body = json.dumps({"products": [{"external_id": i, "title": f"Chaos mug {i}"} for i in ids]}).encode()
        status, _, _ = self.call("POST", "/api/v1/bulk/products", body=body, content_type="application/json")
        assert status == 200, status
        return ids

    def images_of(self, prefix: str) -> dict[int, str]:
        rows = self.postgres.query(
            "SELECT i.id, i.state FROM catalog_productimage i JOIN catalog_product p ON p.id = i.product_id "
            f"WHERE p.external_id LIKE '{prefix}-%'"
        )
        return dict(rows)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    assert PG_BIN is not None, "PostgreSQL server binaries not found (Debian package: postgresql)"
    import tempfile

    # Not under pytest's temp dir: the postgres user cannot enter root's.
    postgres = Postgres(Path(tempfile.mkdtemp(prefix="vitrine-chaos-pg.")))
    postgres.start()
    redis = Redis(tmp_path_factory.mktemp("redis"))
    redis.start()
    stack = Stack(tmp_path_factory.mktemp("vitrine"), postgres, redis)
    try:
        migrated = stack.manage("migrate", "--noinput")
        assert migrated.returncode == 0, migrated.stderr
        key = stack.manage("create_api_key", "chaos", "--scope", "search", "--scope", "catalog:write")
        assert key.returncode == 0, key.stderr
        stack.api_key = key.stdout.strip()
        stack.start_index_server()
        stack.start_web(workers=1, threads=4)
        stack.start_worker_and_beat()
        yield stack
    finally:
        stack.stop()
        if redis.process and redis.process.poll() is None:
            redis.stop(signal.SIGKILL)
        subprocess.run(
            as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(postgres.dir / "data"), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(postgres.dir, ignore_errors=True)


class Probes:
    """The requests shoppers, the shop's backend and the load balancer keep making."""

    def __init__(self, stack: Stack, prefix: str):
        self.stack = stack
        self.prefix = prefix
        self.answers: dict[str, Counter] = {}
        self.slowest = 0.0
        self.slowest_by: dict[str, float] = {}
        self.missing_retry_after = 0
        self.accepted = 0
        self.seed = 0
        # (probe, wall-clock time, seconds, status): over half the budget, or a 5xx
        self.slow: list[tuple] = []

    def round(self, product_ids: list[str]) -> None:
        stack = self.stack
        self.seed += 1
        upload = stack.upload_call(product_ids[self.seed % len(product_ids)], images.noise_jpeg(9000 + self.seed))
        if upload[0] == 201:
            self.accepted += 1
        search_body = json.dumps({"text": "chaos mug"}).encode()
        for name, answer in (
            ("upload", upload),
            ("page", stack.call("GET", "/?q=chaos+mug", key=False)),
            ("api search", stack.call("POST", "/api/v1/search", body=search_body, content_type="application/json")),
            ("ready", stack.call("GET", "/api/v1/health/ready", key=False)),
            ("live", stack.call("GET", "/api/v1/health/live", key=False)),
        ):
            status, seconds, headers = answer
            self.answers.setdefault(name, Counter())[status] += 1
            self.slowest = max(self.slowest, seconds)
            self.slowest_by[name] = round(max(self.slowest_by.get(name, 0.0), seconds), 2)
            if seconds > BUDGET_SECONDS / 2 or status >= 500:
                self.slow.append((name, time.strftime("%H:%M:%S"), round(seconds, 2), status))
            if status == 503 and not headers.get("Retry-After"):
                self.missing_retry_after += 1

    def run_for(self, seconds: float, product_ids: list[str]) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.round(product_ids)
            time.sleep(0.2)

    def statuses(self, name: str) -> set[int]:
        return set(self.answers.get(name, {}))


def slow_report(stack: Stack, probes: Probes) -> str:
    """Which probes were slow or failed, when, and what the web server and the index server
    (its slow calls) logged meanwhile."""
    web = (stack.data_dir / "web.log").read_text(errors="replace").splitlines()
    index = (stack.data_dir / "index-server.log").read_text(errors="replace").splitlines()
    return (
        f"answers {probes.answers}; slow or failed probes {probes.slow}; slowest {probes.slowest_by}; "
        "web.log ends:\n" + "\n".join(web[-40:]) + "\nindex-server.log ends:\n" + "\n".join(index[-10:])
    )


def settle(stack: Stack, prefix: str, expected: int) -> tuple[dict[int, str], float]:
    started = time.monotonic()
    final = wait_for(
        lambda: (states := stack.images_of(prefix)) and "pending" not in states.values() and states,
        f"the {prefix} images to leave pending",
        timeout=RECOVERY_SECONDS,
        interval=1,
    )
    assert len(final) == expected, f"{len(final)} rows for {expected} accepted uploads"
    return final, time.monotonic() - started


def report(name: str, probes: Probes, **figures) -> None:
    answers = {key: dict(counter) for key, counter in probes.answers.items()}
    figures = {**figures, "answers": answers, "slowest_s": probes.slowest_by}
    print(f"\nCHAOS {name}: {json.dumps(figures)}")


def test_postgres_stopped_for_20_seconds_mid_ingest(stack):
    ids = stack.products("pg", 12)
    before = [stack.upload_call(i, images.noise_jpeg(100 + n)) for n, i in enumerate(ids)]
    assert {answer[0] for answer in before} == {201}
    stack.postgres.stop()  # the batches are still waiting their coalescing seconds: they meet the outage
    probes = Probes(stack, "pg")
    try:
        probes.run_for(20, ids)
    finally:
        stack.postgres.start()
    after = [stack.upload_call(i, images.noise_jpeg(200 + n)) for n, i in enumerate(ids[:4])]
    assert {answer[0] for answer in after} == {201}

    for name in ("upload", "page", "api search", "ready"):
        assert probes.statuses(name) <= {503}, (name, probes.answers)  # the database is needed for all
    assert probes.statuses("live") == {200}
    assert probes.missing_retry_after == 0
    assert probes.slowest < BUDGET_SECONDS, slow_report(stack, probes)
    final, recovery = settle(stack, "pg", len(before) + len(after) + probes.accepted)
    assert set(final.values()) == {"indexed"}
    report("postgres-20s", probes, accepted=len(before) + len(after), recovered_in_s=round(recovery, 1))


@pytest.mark.parametrize("how", ["graceful", "sigkill", "frozen"])
def test_redis_restarted_mid_ingest(stack, how):
    """Stopped (SIGTERM), killed (SIGKILL), or frozen (SIGSTOP: connections are taken and
    never answered, as a half-open connection after a failover would be)."""
    prefix = f"redis-{how}"
    ids = stack.products(prefix, 8)
    seed = 300 + {"graceful": 0, "sigkill": 50, "frozen": 100}[how]
    before = [stack.upload_call(i, images.noise_jpeg(seed + n)) for n, i in enumerate(ids)]
    assert {answer[0] for answer in before} == {201}
    if how == "frozen":
        stack.redis.process.send_signal(signal.SIGSTOP)
    else:
        stack.redis.stop(signal.SIGTERM if how == "graceful" else signal.SIGKILL)
    probes = Probes(stack, prefix)
    try:
        probes.run_for(8, ids)
    finally:
        if how == "frozen":
            stack.redis.process.send_signal(signal.SIGCONT)
        else:
            stack.redis.start()

    # Vitrine does without Redis: uploads wait in the outbox, the cache and throttle fail open.
    assert probes.statuses("upload") == {201}, probes.answers
    assert probes.statuses("page") == {200} and probes.statuses("api search") == {200}, slow_report(stack, probes)
    assert probes.statuses("ready") == {200} and probes.statuses("live") == {200}, slow_report(stack, probes)
    assert probes.slowest < BUDGET_SECONDS, slow_report(stack, probes)
    final, recovery = settle(stack, prefix, len(before) + probes.accepted)
    assert set(final.values()) == {"indexed"}
    report(f"redis-{how}", probes, accepted=len(before) + probes.accepted, recovered_in_s=round(recovery, 1))


def test_an_index_server_that_accepts_and_never_answers(stack):
    ids = stack.products("hung", 8)
    before = [stack.upload_call(i, images.noise_jpeg(500 + n)) for n, i in enumerate(ids)]
    assert {answer[0] for answer in before} == {201}
    server = next(p for p in stack.processes if "serve_index" in " ".join(map(str, p.args)))
    os.kill(server.pid, signal.SIGSTOP)  # its socket still accepts (the kernel's backlog)
    probes = Probes(stack, "hung")
    try:
        # 16 s: the first three reads wait the 4-s read timeout; then the breaker answers
        # at once (VITRINE_INDEX_BREAKER_SECONDS), and those rounds are probed too.
        probes.run_for(16, ids)
    finally:
        os.kill(server.pid, signal.SIGCONT)

    assert probes.statuses("page") <= {503} and probes.statuses("api search") <= {503}, probes.answers
    assert probes.statuses("ready") <= {503} and probes.statuses("live") == {200}
    assert probes.statuses("upload") == {201}  # accepted: the worker indexes them once the store is back
    assert probes.missing_retry_after == 0
    assert probes.slowest < BUDGET_SECONDS, slow_report(stack, probes)
    final, recovery = settle(stack, "hung", len(before) + probes.accepted)
    assert set(final.values()) == {"indexed"}
    # The breaker closes again: searches answer once the store does.
    wait_for(lambda: stack.call("GET", "/?q=chaos+mug", key=False)[0] == 200, "searches to answer again", timeout=60)
    report("index-hung", probes, accepted=len(before) + probes.accepted, recovered_in_s=round(recovery, 1))

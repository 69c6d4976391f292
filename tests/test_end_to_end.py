"""End to end with real parts: Debian redis-server, a Celery worker process, gunicorn.

The web process and the workers share a SQLite file and the embedded vector store, as a
small single-machine deployment with a broker would: the store is opened by the index
server (``manage.py serve_index``), which the others call (VITRINE_INDEX_SERVER).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests import images

# One process runs them all (they share a redis-server): make test spreads the suite over two.
pytestmark = [pytest.mark.live, pytest.mark.xdist_group("end-to-end")]

ROOT = Path(__file__).resolve().parent.parent
PATIENCE_SECONDS = 300  # generous: a slow machine must not fail these tests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, what: str, timeout: float = PATIENCE_SECONDS, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"Timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    try:
        wait_for(answers, "redis-server to answer", timeout=30)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


class Deployment:
    """A data dir, with helpers to run the web server, workers and commands on it."""

    def __init__(self, data_dir: Path, redis_url: str):
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "searchsite.settings",
            "VITRINE_DATA_DIR": str(data_dir),
            "CELERY_BROKER_URL": redis_url,
            "VITRINE_INDEX_SERVER": f"127.0.0.1:{free_port()}",
            # A killed worker's batch is handed out again after this long.
            "CELERY_BROKER_VISIBILITY_TIMEOUT": "5",
            "CELERY_BROKER_RESTORE_INTERVAL": "1",
            "PYTHONUNBUFFERED": "1",
            # The tests read the processes' INFO lines ("received", "Loaded CLIP model").
            "LOG_LEVEL": "info",
        }
        self.processes: list[subprocess.Popen] = []
        self.web_url = ""

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=PATIENCE_SECONDS,
        )

    def spawn(self, name: str, argv: list[str]) -> tuple[subprocess.Popen, Path]:
        """A process of the deployment (Python, from the project root, its own session so
        a signal reaches its children), logging to ``<name>.log``; stopped by ``stop``."""
        log = self.data_dir / f"{name}.log"
        process = subprocess.Popen(
            [sys.executable, *argv],
            cwd=ROOT,
            env=self.env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process, log

    def start_worker(self, name: str) -> tuple[subprocess.Popen, Path]:
        return self.spawn(
            name,
            ["-m", "celery", "-A", "searchsite", "worker", "-Q", "embeddings", "--pool", "solo"]
            + ["--loglevel", "INFO", "--hostname", f"{name}@%h", "--without-gossip", "--without-mingle"],
        )

    def start_index_server(self) -> subprocess.Popen:
        process, log = self.spawn("index-server", ["manage.py", "serve_index"])
        host, port = self.env["VITRINE_INDEX_SERVER"].split(":")

        def listening() -> bool:
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                return True
            except OSError:
                return process.poll() is not None  # stop waiting: it failed

        wait_for(listening, "the index server", timeout=60)
        assert process.poll() is None, log.read_text()
        return process

    def start_web(self, *, workers: int = 1, threads: int = 1) -> None:
        port = free_port()
        self.spawn(
            "web",
            ["-m", "gunicorn", "searchsite.wsgi", "--bind", f"127.0.0.1:{port}"]
            + ["--workers", str(workers), "--threads", str(threads), "--timeout", "120"],
        )
        self.web_url = f"http://127.0.0.1:{port}"
        wait_for(lambda: self._answers("/api/v1/health"), "the web server", timeout=120)

    def _answers(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(self.web_url + path, timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    api_key = ""

    def request(self, method: str, path: str, *, body: bytes | None = None, content_type: str = "") -> dict:
        request = urllib.request.Request(self.web_url + path, data=body, method=method)
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        if content_type:
            request.add_header("Content-Type", content_type)
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read() or b"{}")

    def upload(self, external_id: str, content: bytes) -> dict:
        boundary = uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.jpg"\r\n'
                f"Content-Type: image/jpeg\r\n\r\n"
            ).encode()
            + content
            + f"\r\n--{boundary}--\r\n".encode()
        )
        return self.request(
            "POST",
            f"/api/v1/products/{external_id}/images",
            body=body,
            content_type=f"multipart/form-data; boundary={boundary}",
        )

    def image_states(self) -> dict[int, str]:
        with sqlite3.connect(self.data_dir / "vitrine.sqlite3", timeout=30) as connection:
            return dict(connection.execute("SELECT id, state FROM catalog_productimage").fetchall())

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def deployment(tmp_path, redis_url):
    deployment = Deployment(tmp_path, redis_url)
    migrated = deployment.manage("migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    key = deployment.manage("create_api_key", "e2e", "--scope", "search", "--scope", "catalog:write")
    assert key.returncode == 0, key.stderr
    deployment.api_key = key.stdout.strip()
    deployment.start_index_server()
    yield deployment
    deployment.stop()


def test_an_image_uploaded_through_the_api_is_indexed_by_a_worker_and_found(deployment):
    deployment.start_web()
    worker, _ = deployment.start_worker("worker1")
    product = json.dumps({"title": "Striped mug", "category": "kitchen"}).encode()
    deployment.request("PUT", "/api/v1/products/mug-1", body=product, content_type="application/json")
    content = images.noise_jpeg(11)

    uploaded = deployment.upload("mug-1", content)

    assert uploaded["state"] == "pending"  # a worker does the embedding, not the request
    image_id = uploaded["id"]
    state = wait_for(
        lambda: (s := deployment.request("GET", f"/api/v1/images/{image_id}")["state"]) != "pending" and s,
        "the worker to index the image",
    )
    assert state == "indexed"

    # The web loaded the model while it started (not on the first search), and searches
    # the store the worker wrote, both running.
    wait_for(lambda: "Loaded CLIP model" in (deployment.data_dir / "web.log").read_text(), "the web to preload")
    assert worker.poll() is None
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="q.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    found = deployment.request(
        "POST", "/api/v1/search", body=body, content_type=f"multipart/form-data; boundary={boundary}"
    )
    assert found["results"][0]["image_id"] == image_id
    assert found["results"][0]["score"] > 0.999


def test_a_batch_survives_its_worker_being_killed(deployment, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for number in range(12):
        (folder / f"item-{number:02d}.jpg").write_bytes(images.noise_jpeg(200 + number))
    imported = deployment.manage("import_images", str(folder))  # broker mode: one queued batch of 12
    assert imported.returncode == 0, imported.stderr
    assert "Queued 12 images" in imported.stdout
    assert set(deployment.image_states().values()) == {"pending"}

    first, log = deployment.start_worker("doomed")
    # The task has started once the worker logs it; loading the model then takes seconds,
    # so the kill lands in the middle of the batch.
    wait_for(lambda: "embed_images" in log.read_text() and "received" in log.read_text(), "the batch to start")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    states_at_kill = deployment.image_states()
    assert set(states_at_kill.values()) == {"pending"}, "the kill came too late to be in the middle of the batch"

    deployment.start_worker("rescuer")

    final = wait_for(
        lambda: (states := deployment.image_states()) and "pending" not in states.values() and states,
        "every image to leave pending",
    )
    assert set(final.values()) == {"indexed"}
    assert len(final) == 12

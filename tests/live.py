"""A live Vitrine for tests that need a real server: its own process (runserver), its own
data dir, the embedded mode, the demo model. Used by the browser, API example and
schemathesis tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_PATIENCE_SECONDS = 180  # generous: a slow machine must not fail these tests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveVitrine:
    def __init__(self, data_dir: Path, **env: str):
        self.data_dir = data_dir
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("VITRINE_") and key not in ("DATABASE_URL", "QDRANT_URL", "CELERY_BROKER_URL")
        }
        self.env.update({"VITRINE_DATA_DIR": str(data_dir), "LOG_LEVEL": "warning", "DEBUG": "1", **env})
        self.log = data_dir / "server.log"
        self.url = ""
        self.server: subprocess.Popen | None = None

    def manage(self, *args: str) -> str:
        """Run a management command; its stdout."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}"
        return done.stdout

    def shop(self, products: int, seed: int) -> None:
        self.manage("migrate", "--noinput")
        self.manage("load_demo_catalog", "--products", str(products), "--seed", str(seed), "--verbosity", "0")

    def start(self) -> None:
        port = free_port()
        with self.log.open("wb") as log:
            self.server = subprocess.Popen(
                [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.url = f"http://127.0.0.1:{port}"

    def wait(self) -> None:
        deadline = time.monotonic() + START_PATIENCE_SECONDS
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/api/v1/health", timeout=5):
                    return
            except OSError:
                if time.monotonic() > deadline or self.server.poll() is not None:
                    self.stop()
                    raise AssertionError(f"The Vitrine server did not start:\n{self.log_text()[-3000:]}") from None
                time.sleep(0.3)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()

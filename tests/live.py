"""A live Vitrine for tests that need a real server: its own process (runserver), its own
data dir, the embedded mode, the demo model. Used by the browser, API example and
schemathesis tests.

The demo shop is loaded once per run into a template data dir (``live_template``); each
live server starts from a copy of it (the database and the vector store copied, the
photos hard-linked: files are only ever added or deleted, never changed in place).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_PATIENCE_SECONDS = 180  # generous: a slow machine must not fail these tests
# The templates' shops, of demo seed 5 (no green dotted mug, which the API example adds):
# 96 products for the browser and the API example (four pages of results), 24 for the
# schemathesis run (quicker to build; it only needs some products and photos). Both have
# an admin account for the browser tests.
TEMPLATE_PRODUCTS = 96
SCHEMA_TEMPLATE_PRODUCTS = 24
TEMPLATE_SEED = 5
ADMIN_PASSWORD = "a-long-test-password-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_environment(**env: str) -> dict[str, str]:
    """This process's environment without Vitrine's own settings (the tests' servers use
    the embedded defaults unless told otherwise), plus ``env``."""
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("VITRINE_") and key not in ("DATABASE_URL", "QDRANT_URL", "CELERY_BROKER_URL")
    }
    # One torch thread per process: the tests run several at once on a small machine.
    return {**base, "LOG_LEVEL": "warning", "DEBUG": "1", "VITRINE_TORCH_THREADS": "1", **env}


def manage(data_dir: Path, *args: str, **env: str) -> str:
    """Run a management command on a data dir; its stdout."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean_environment(VITRINE_DATA_DIR=str(data_dir), **env),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}"
    return done.stdout


def template_build(data_dir: Path, products: int = TEMPLATE_PRODUCTS) -> Path:
    """Migrate, load the demo shop and add an admin: a data dir live servers copy."""
    manage(data_dir, "migrate", "--noinput")
    manage(
        data_dir,
        "load_demo_catalog",
        "--products",
        str(products),
        "--seed",
        str(TEMPLATE_SEED),
        "--no-judgments",
        "--verbosity",
        "0",
    )
    manage(
        data_dir,
        "createsuperuser",
        "--noinput",
        "--username",
        "admin",
        "--email",
        "admin@shop.example",
        DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD,
    )
    return data_dir


def template_copy(template: Path, data_dir: Path) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    for entry in template.iterdir():
        target = data_dir / entry.name
        if entry.name == "media":
            shutil.copytree(entry, target, copy_function=os.link)
        elif entry.is_dir():
            shutil.copytree(entry, target)
        else:
            shutil.copy2(entry, target)
    return data_dir


class LiveVitrine:
    def __init__(self, data_dir: Path, **env: str):
        self.data_dir = data_dir
        self.env = clean_environment(VITRINE_DATA_DIR=str(data_dir), **env)
        self.log = data_dir / "server.log"
        self.url = ""
        self.server: subprocess.Popen | None = None

    @classmethod
    def from_template(cls, template: Path, data_dir: Path, **env: str) -> LiveVitrine:
        return cls(template_copy(template, data_dir), **env)

    def manage(self, *args: str) -> str:
        """Run a management command on this server's data dir; its stdout."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}"
        return done.stdout

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

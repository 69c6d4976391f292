"""examples/sync_and_search.py, run as a user would: its own process, against a live
Vitrine (runserver, embedded mode, the demo model, a small demo shop), with a key made by
``manage.py create_api_key`` and two photos of a product the demo shop does not sell."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from catalog.demo import Attributes, render_product
from tests.live import ROOT

# One process runs the API's live tests (they share a server): make test spreads the suite over two.
pytestmark = [pytest.mark.live, pytest.mark.xdist_group("live-api")]

EXAMPLE = ROOT / "examples" / "sync_and_search.py"
EXTERNAL_ID = "example-mug-1"  # what the example syncs


@pytest.fixture
def site(live_api):
    """The live API server (url, key, data_dir)."""
    return live_api.url, live_api.key, live_api.data_dir


@pytest.fixture
def photos(tmp_path) -> list[Path]:
    """Two distinct renders of a green dotted mug, as the shop's photographer would send them."""
    paths = []
    for number, seed in enumerate((101, 202), 1):
        path = tmp_path / f"mug-{number}.jpg"
        path.write_bytes(render_product(Attributes("mug", "green", "dotted"), rng=random.Random(seed)))
        paths.append(path)
    return paths


def run_example(*args: str, url: str | None = None, key: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VITRINE_")}
    if url:
        env["VITRINE_URL"] = url
    if key:
        env["VITRINE_API_KEY"] = key
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def api(url: str, key: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{url}/api/v1/{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def test_example_syncs_waits_and_finds_the_product(site, photos):
    url, key, data_dir = site
    done = run_example(*map(str, photos), url=url, key=key)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    out = done.stdout
    assert f"synced product {EXTERNAL_ID}" in out
    assert "(pending)" in out or "(indexed)" in out
    assert "indexed: 2 of 2 images" in out
    assert f"top search result: {EXTERNAL_ID}" in out, out
    similar = out.split(f"similar to {EXTERNAL_ID}:", 1)[1]
    assert "  1. demo-5-" in similar, out  # other products, never itself
    assert f"{EXTERNAL_ID} " not in similar

    # What Vitrine holds, asked independently of the example's own output.
    product = api(url, key, f"products/{EXTERNAL_ID}")
    assert product["title"] == "Green dotted mug"
    assert product["category"] == "kitchen" and product["price"] == "14.90"
    assert product["image_counts"] == {"pending": 0, "indexed": 2, "failed": 0}
    assert len({image["sha256"] for image in product["images"]}) == 2
    with sqlite3.connect(data_dir / "vitrine.sqlite3") as db:
        states = db.execute(
            "SELECT i.state FROM catalog_productimage i JOIN catalog_product p ON p.id = i.product_id "
            "WHERE p.external_id = ?",
            (EXTERNAL_ID,),
        ).fetchall()
    assert sorted(states) == [("indexed",), ("indexed",)]
    found = api(url, key, "search", {"text": "green dotted mug", "limit": 3})
    assert found["results"][0]["external_id"] == EXTERNAL_ID, found["results"]

    # Safe to run again: the same product, the same two images (same bytes), nothing new.
    again = run_example(*map(str, photos), url=url, key=key)
    assert again.returncode == 0, again.stderr
    assert api(url, key, f"products/{EXTERNAL_ID}")["image_counts"] == {"pending": 0, "indexed": 2, "failed": 0}


def test_example_without_a_key_says_what_to_do(photos):
    done = run_example(*map(str, photos), url="http://127.0.0.1:9")
    assert done.returncode == 1
    assert "Set VITRINE_API_KEY" in done.stderr
    assert done.stdout == ""


def test_example_reports_an_api_error_message(site, photos):
    url, _, _ = site
    done = run_example(*map(str, photos), url=url, key="vtr_not-a-real-key")
    assert done.returncode != 0
    assert "PUT products/example-mug-1: 401" in done.stderr, done.stderr

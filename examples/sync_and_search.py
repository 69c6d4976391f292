"""Sync a product with two photos into Vitrine, wait until they are indexed, then search.

    export VITRINE_API_KEY=vtr_...   # manage.py create_api_key shop --scope search --scope catalog:write
    python examples/sync_and_search.py mug-front.jpg mug-side.jpg   # or VITRINE_IMAGES=a.jpg:b.jpg

VITRINE_URL defaults to http://127.0.0.1:8000. Needs only `requests`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import requests

BASE_URL = os.environ.get("VITRINE_URL", "http://127.0.0.1:8000").rstrip("/")
API_KEY = os.environ.get("VITRINE_API_KEY", "")
EXTERNAL_ID = "example-mug-1"  # the shop's own id for the product
PRODUCT = {
    "title": "Green dotted mug",
    "description": "A green stoneware mug with white dots. 350 ml.",
    "brand": "Casa Mora",
    "category": "kitchen",
    "price": "14.90",
    "currency": "EUR",
    "url": "https://shop.example/p/example-mug-1",
    "attributes": {"colour": "green", "pattern": "dotted", "kind": "mug"},
}


def api(method: str, path: str, **kwargs) -> dict:
    """One API call; an error answer ({"error": {"code", "message"}}) raises with its message."""
    response = requests.request(
        method, f"{BASE_URL}/api/v1/{path}", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60, **kwargs
    )
    if not response.ok:
        try:
            error = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            error = {"code": "http_error", "message": response.text[:200]}
        raise RuntimeError(f"{method} {path}: {response.status_code} {error['code']}: {error['message']}")
    return response.json() if response.content else {}


def wait_until_indexed(image_ids: list[int], timeout: float = 120) -> None:
    """With a Celery worker, new images are `pending` for a moment; embedded, already `indexed`."""
    deadline = time.monotonic() + timeout
    while True:
        status = api("GET", "images/status", params={"ids": ",".join(map(str, image_ids))})
        failed = [f"image {i['id']}: {i['error']}" for i in status["images"] if i["state"] == "failed"]
        if failed or status["missing"]:
            raise RuntimeError(f"Indexing failed: {failed}, missing: {status['missing']}")
        if status["summary"]["pending"] == 0:
            print(f"indexed: {status['summary']['indexed']} of {len(image_ids)} images")
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"Still pending after {timeout:.0f} s: {status['summary']}")
        time.sleep(0.5)


def show(heading: str, page: dict) -> None:
    print(f"{heading}: {len(page['results'])} shown of {page['total']}")
    for rank, hit in enumerate(page["results"], 1):
        print(f"  {rank}. {hit['external_id']}  {hit['title']}  {hit['price']} {hit['currency']}  {hit['score']:.3f}")


def main() -> None:
    if not API_KEY:
        sys.exit("Set VITRINE_API_KEY (make one: manage.py create_api_key shop --scope search --scope catalog:write)")
    paths = sys.argv[1:] or [p for p in os.environ.get("VITRINE_IMAGES", "").split(os.pathsep) if p]
    if len(paths) != 2:
        sys.exit("Give two image files: python examples/sync_and_search.py front.jpg side.jpg")

    product = api("PUT", f"products/{EXTERNAL_ID}", json=PRODUCT)  # 201 created, 200 replaced
    print(f"synced product {product['external_id']} (id {product['id']}): {product['title']}")
    image_ids = []
    for path in map(Path, paths):
        with path.open("rb") as file:
            image = api("POST", f"products/{EXTERNAL_ID}/images", files={"file": (path.name, file)})
        print(f"uploaded {path.name} as image {image['id']} ({image['state']})")
        image_ids.append(image["id"])
    wait_until_indexed(image_ids)

    found = api("POST", "search", json={"text": PRODUCT["title"].lower(), "limit": 5})
    show(f"search {PRODUCT['title'].lower()!r}", found)
    print(f"top search result: {found['results'][0]['external_id'] if found['results'] else '(none)'}")
    show(f"similar to {EXTERNAL_ID}", api("GET", f"products/{EXTERNAL_ID}/similar", params={"limit": 5}))


if __name__ == "__main__":
    main()

"""Images/s through the admin's bulk upload and through the feed importer, against a bare
open_clip encode of the same photos, all in one run (embedded mode, the demo model).

    .venv/bin/python benchmarks/admin_intake.py [--images 200]

- bulk page: what bulk.js does, one POST per file to /admin/bulk-upload/<id>/files (a
  logged-in merchandiser, Django's test client; in the embedded mode each request also
  embeds its photo before answering);
- feed importer: `import_feed` on a CSV whose image URLs point at a local HTTP server
  (downloaded through the safe fetcher, 8 at a time), then embedded in batches;
- baseline: decode and encode the same photos in batches of VITRINE_EMBED_BATCH_SIZE.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="vitrine-bench-"))
    os.environ["VITRINE_DATA_DIR"] = str(workdir / "data")
    os.environ["VITRINE_FETCH_ALLOWED_NETWORKS"] = "127.0.0.1/32"  # the photo server below
    for name in ("CELERY_BROKER_URL", "QDRANT_URL", "DATABASE_URL"):
        os.environ.pop(name, None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "searchsite.settings")
    os.environ.setdefault("LOG_LEVEL", "warning")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command
    from django.test import Client
    from PIL import Image

    from catalog.demo import demo_products
    from catalog.models import ProductImage
    from embeddings.model import get_encoder

    call_command("migrate", verbosity=0)
    specs = demo_products(count=args.images * 2, seed=31, images_per_product=(1, 1))
    photos = [spec.render_images()[0] for spec in specs]
    for_bulk, for_feed = photos[: args.images], photos[args.images :]
    encoder = get_encoder()
    size = settings.VITRINE_EMBED_BATCH_SIZE

    started = time.perf_counter()
    for start in range(0, len(for_bulk), size):
        encoder.images_encode([Image.open(io.BytesIO(p)).convert("RGB") for p in for_bulk[start : start + size]])
    bare = len(for_bulk) / (time.perf_counter() - started)

    user = User.objects.create_superuser("bench", password="pw")
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    upload_id = client.post("/admin/bulk-upload/start", {"mode": "per_file"}).json()["upload"]
    started = time.perf_counter()
    for number, content in enumerate(for_bulk):
        response = client.post(
            f"/admin/bulk-upload/{upload_id}/files",
            {"file": SimpleUploadedFile(f"bulk-{number}.jpg", content, "image/jpeg")},
        )
        assert response.status_code == 201, response.content
    bulk = len(for_bulk) / (time.perf_counter() - started)
    assert ProductImage.objects.filter(state="indexed").count() == len(for_bulk)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = for_feed[int(self.path.strip("/").split(".")[0])]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    feed = workdir / "feed.csv"
    lines = ["id,title,price,image_link"]
    lines += [
        f"feed-{n},Feed product {n},9.90,http://127.0.0.1:{server.server_port}/{n}.jpg" for n in range(len(for_feed))
    ]
    feed.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    call_command("import_feed", str(feed), verbosity=0, stdout=io.StringIO())
    feed_rate = len(for_feed) / (time.perf_counter() - started)
    server.shutdown()
    assert ProductImage.objects.filter(state="indexed").count() == len(photos)

    print(f"model {encoder.space.id}, {args.images} demo photos of 160x160 each way")
    print(f"bare open_clip encode (batches of {size}) : {bare:8.1f} images/s")
    print(f"admin bulk upload, one request per file  : {bulk:8.1f} images/s  ({bulk / bare:.2f} of bare)")
    print(f"import_feed, photos over HTTP            : {feed_rate:8.1f} images/s  ({feed_rate / bare:.2f} of bare)")


if __name__ == "__main__":
    main()

"""Captions/s through `manage.py caption --missing` against the stand-in OpenAI-compatible
server (tests/standin_openai.py, its own process on loopback), against a bare loop of
`caption_image` calls on the same photos to the same server, in one run (embedded mode).

    .venv/bin/python benchmarks/caption_throughput.py [--products 40] [--rounds 3]

- command: what `caption --missing` does per photo: select what lacks text, read the stored
  photo, make the 512-px JPEG, call the API, write the suggestion (SQLite), progress;
- baseline: `caption_image(jpeg, context=…)` on the same photos, their JPEGs made beforehand.

The stand-in answers in well under a millisecond, so this measures Vitrine's own cost per
caption; a real vision model takes seconds a photo, next to which that cost vanishes.
Best of ``--rounds`` for each, alternating.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import embedded_django  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(port: int) -> None:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("The stand-in server did not start.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=40, help="demo products (about 2.5 photos each)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "standin_openai.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(port)
        embedded_django()
        from django.conf import settings

        settings.VITRINE_CAPTION_API_URL = f"http://127.0.0.1:{port}/v1"
        settings.VITRINE_CAPTION_PER_MINUTE = 0  # no budget: the throughput itself
        from django.core.management import call_command

        from catalog.models import Product, ProductImage
        from embeddings.captions import image_jpeg, product_context
        from embeddings.generative import caption_image
        from embeddings.models import CaptionSuggestion

        call_command("migrate", verbosity=0)
        call_command("load_demo_catalog", products=args.products, verbosity=0)
        Product.objects.update(description="")
        ProductImage.objects.update(alt_text="", alt_text_zh="")
        images = list(ProductImage.objects.select_related("product").order_by("pk"))
        prepared = [(image_jpeg(image), product_context(image.product)) for image in images]
        count = len(images)

        def bare() -> float:
            started = time.perf_counter()
            for jpeg, context in prepared:
                caption_image(jpeg, context=context)
            return time.perf_counter() - started

        def command() -> float:
            CaptionSuggestion.objects.all().delete()
            started = time.perf_counter()
            call_command("caption", "--missing", verbosity=0, stdout=open("/dev/null", "w"))  # noqa: SIM115
            elapsed = time.perf_counter() - started
            written = CaptionSuggestion.objects.filter(state="pending").count()
            if written != count:
                raise SystemExit(f"The command wrote {written} suggestions for {count} photos.")
            return elapsed

        bare()  # warm up: connections, the stand-in's first answers
        bare_times, command_times = [], []
        for _ in range(args.rounds):
            bare_times.append(bare())
            command_times.append(command())
    finally:
        server.terminate()
        server.wait(timeout=10)

    bare_rate = count / min(bare_times)
    command_rate = count / min(command_times)
    print(f"{count} photos of {args.products} products, best of {args.rounds} rounds")
    print(f"bare caption_image loop:   {bare_rate:7.1f} captions/s  ({1000 / bare_rate:.2f} ms each)")
    print(f"caption --missing command: {command_rate:7.1f} captions/s  ({1000 / command_rate:.2f} ms each)")
    print(
        f"command ÷ bare: {command_rate / bare_rate:.2f}× the throughput "
        f"(+{1000 / command_rate - 1000 / bare_rate:.2f} ms a photo: selecting, reading, thumbnailing, writing)"
    )


if __name__ == "__main__":
    main()

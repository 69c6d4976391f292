"""gunicorn's settings for Vitrine, read from the working directory (compose's web service
and the tests run gunicorn there). The command line still sets workers and threads."""

import os


def on_starting(server):
    """The embedded vector store admits one process: refuse several gunicorn workers on
    it, with what to do, instead of answering half the searches with 503 (each worker
    locking the others out)."""
    shared = os.environ.get("QDRANT_URL", "").strip() or os.environ.get("VITRINE_INDEX_SERVER", "").strip()
    if server.cfg.workers > 1 and not shared:
        raise RuntimeError(
            f"{server.cfg.workers} gunicorn workers would share the embedded vector store, which one process "
            "can open at a time. Run one worker with threads (--workers 1 --threads 4), or set QDRANT_URL to a "
            "Qdrant server, or run `python manage.py serve_index` and set VITRINE_INDEX_SERVER for every process."
        )

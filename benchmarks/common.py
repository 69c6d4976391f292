"""What the benchmarks share (each script puts the project root on sys.path first)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (share 0.95: p95)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def embedded_django() -> Path:
    """Django set up in the embedded mode on a fresh data dir (SQLite, the in-process
    store, tasks in-process), whatever the environment says of servers; its folder."""
    workdir = Path(tempfile.mkdtemp(prefix="vitrine-bench-"))
    os.environ["VITRINE_DATA_DIR"] = str(workdir / "data")
    for name in ("CELERY_BROKER_URL", "QDRANT_URL", "DATABASE_URL"):
        os.environ.pop(name, None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "searchsite.settings")
    os.environ.setdefault("LOG_LEVEL", "warning")
    import django

    django.setup()
    return workdir

"""Demo shops for tests, built once per run and copied for each test that uses one.

Loading a demo shop (rendering, intake, embedding, calibrating) takes seconds; restoring a
copy takes a fraction of one: the rows are inserted with their ids, the photos hard-linked
(their files are never changed in place, only added or deleted), the vector store copied.
Each test still gets its own shop: what it changes is gone for the next one.
"""

from __future__ import annotations

import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

from django.apps import apps
from django.core.management import call_command
from django.core.management.color import no_style
from django.db import connection
from django.test import override_settings

from embeddings.index import reset_index
from embeddings.relevance import cutoffs_forget


@dataclass(frozen=True)
class Snapshot:
    folder: Path  # media/, qdrant/ and, when asked, demo/ (judgments)
    rows: list  # [(model, [field values by attname])], parents first
    judgments: Path | None


def snapshot_models() -> list:
    from catalog.models import Product, ProductImage
    from embeddings.models import RelevanceCutoff, Synonym, TagFacet, TagValue

    return [Product, ProductImage, RelevanceCutoff, TagFacet, TagValue, Synonym]


def snapshot_restore(snapshot: Snapshot, settings) -> None:
    """Put the snapshot's shop into this test's database and stores."""
    reset_index()
    shutil.copytree(
        snapshot.folder / "index", settings.VITRINE_INDEX_PATH, dirs_exist_ok=True, copy_function=sparse_copy
    )
    shutil.copytree(snapshot.folder / "media", settings.MEDIA_ROOT, dirs_exist_ok=True, copy_function=os.link)
    for model, rows in snapshot.rows:
        model.objects.bulk_create([model(**row) for row in rows])
    cutoffs_forget()  # bulk_create sends no post_save
    with connection.cursor() as cursor:  # new rows must not reuse the restored ids
        for statement in connection.ops.sequence_reset_sql(no_style(), [model for model, _ in snapshot.rows]):
            cursor.execute(statement)


def sparse_copy(source: str, target: str) -> None:
    """Copy a file keeping its holes. The embedded store preallocates its memory-mapped
    chunks (a 60-product shop's index: 2 MB of data in 230 MB of files); a plain copy
    writes every zero, and a few hundred tests would fill the disk with them."""
    with open(source, "rb") as reader, open(target, "wb") as writer:
        size = os.fstat(reader.fileno()).st_size
        position = 0
        while position < size:
            try:
                start = os.lseek(reader.fileno(), position, os.SEEK_DATA)
            except OSError:  # no data after position: the rest is a hole
                break
            end = os.lseek(reader.fileno(), start, os.SEEK_HOLE)
            reader.seek(start)
            writer.seek(start)
            remaining = end - start
            while remaining:
                chunk = reader.read(min(remaining, 1 << 20))
                writer.write(chunk)
                remaining -= len(chunk)
            position = end
        writer.truncate(size)
    shutil.copystat(source, target)


def snapshot_shared(folder: Path, django_db_blocker, *, products: int, seed: int, judgments: bool) -> Snapshot:
    """The snapshot in ``folder``, built by the first test process that asks for it (the
    others wait, then read its rows): a run spread over several processes builds it once."""
    from filelock import FileLock

    rows_file = folder / "rows.pickle"
    with FileLock(str(folder.with_suffix(".lock"))):
        if not rows_file.exists():
            snapshot = snapshot_build(folder, django_db_blocker, products=products, seed=seed, judgments=judgments)
            rows = [(model._meta.label, model_rows) for model, model_rows in snapshot.rows]
            rows_file.write_bytes(pickle.dumps(rows))
            return snapshot
    rows = [(apps.get_model(label), model_rows) for label, model_rows in pickle.loads(rows_file.read_bytes())]
    return Snapshot(folder=folder, rows=rows, judgments=folder / "demo" / "judgments.jsonl" if judgments else None)


def snapshot_build(folder: Path, django_db_blocker, *, products: int, seed: int, judgments: bool) -> Snapshot:
    """Load a demo shop into the (empty) test database, keep a copy of it, and empty it again.
    Called by session fixtures, before any test's own rows exist."""
    options = {"judgments": folder / "demo"} if judgments else {"no_judgments": True}
    reset_index()
    stores = override_settings(MEDIA_ROOT=folder / "media", VITRINE_INDEX_PATH=folder / "index")
    with django_db_blocker.unblock(), stores:
        (folder / "media").mkdir(parents=True, exist_ok=True)
        call_command("load_demo_catalog", products=products, seed=seed, verbosity=0, **options)
        reset_index()  # closes the store, so its files are complete on disk
        models = snapshot_models()
        rows = [(model, list(model.objects.order_by("pk").values())) for model in models]
        for model in reversed(models):
            model.objects.all().delete()
    return Snapshot(folder=folder, rows=rows, judgments=folder / "demo" / "judgments.jsonl" if judgments else None)

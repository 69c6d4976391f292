"""What the catalog tells the rest of Vitrine after it writes.

The catalog's services send these signals themselves, right after their rows are written,
so no caller (view, admin, API, command, task) can forget to tell the index. The
``embeddings`` app connects its receivers in ``EmbeddingsConfig.ready()``; the catalog
imports nothing of it. Receivers that start work defer it to the commit
(``transaction.on_commit``), so a worker never looks for a row that is not there yet and
a rolled-back write starts nothing. Explicit signals, as paperless-ngx's
``document_consumption_finished``: never a ``post_save`` that embeds.

Each signal carries primitive ids:

- ``images_added(image_ids)``: images waiting to be embedded (new, or put back in the
  queue to be embedded again);
- ``images_removed(image_ids)``: images whose rows are gone;
- ``products_changed(changes)``: ``{product_id: (field, ...)}`` for products whose stored
  fields changed (a new product has no photo yet, so it is not "changed");
- ``intake_starting()``: a command is about to add images and, in the embedded mode, to
  embed them in this process; a receiver raises
  :class:`~searchsite.errors.ServiceUnavailable` when that cannot work (the embedded store
  is held by another process), so the command stops before writing anything;
- ``intake_finished()``: such a command is done (in the embedded mode its images are
  embedded): the index may build what makes a large collection fast.

:func:`deferred` holds the signals sent inside it and sends them merged, once: a command
or a feed import that adds thousands of images has them embedded in full batches, not
one by one.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator

from django.db import transaction
from django.dispatch import Signal

images_added = Signal()
images_removed = Signal()
products_changed = Signal()
intake_starting = Signal()
intake_finished = Signal()

_local = threading.local()


class HeldSignals:
    """The signals sent inside a :func:`deferred` block, merged (only those whose writes
    committed: a rolled-back savepoint's signals are dropped with it)."""

    def __init__(self) -> None:
        self.added: list[int] = []
        self.removed: list[int] = []
        self.changes: dict[int, set[str]] = {}

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changes)

    def flush(self, *, batch_size: int | None = None, progress: Callable[[int], object] | None = None) -> None:
        """Send what is held: removals, then changes, then the added images, in batches of
        ``batch_size`` (``progress`` is told each batch's size once it is sent). In the
        embedded mode each batch is embedded before this returns."""
        if transaction.get_connection().in_atomic_block:
            raise RuntimeError("HeldSignals.flush() sends at once; call it outside transaction.atomic().")
        removed, changes, added = self.removed, self.changes, list(dict.fromkeys(self.added))
        self.removed, self.changes, self.added = [], {}, []
        outer = [holder for holder in _holders() if holder is not self]
        if outer:  # a block inside another deferred block: the outer one sends
            outer[-1].removed.extend(removed)
            for pk, fields in changes.items():
                outer[-1].changes.setdefault(pk, set()).update(fields)
            outer[-1].added.extend(added)
            return
        if removed:
            images_removed.send(sender=HeldSignals, image_ids=list(dict.fromkeys(removed)))
        if changes:
            products_changed.send(sender=HeldSignals, changes={pk: tuple(sorted(f)) for pk, f in changes.items()})
        size = batch_size or max(1, len(added))
        for start in range(0, len(added), size):
            batch = added[start : start + size]
            images_added.send(sender=HeldSignals, image_ids=batch)
            if progress is not None:
                progress(len(batch))


def _holders() -> list[HeldSignals]:
    if not hasattr(_local, "holders"):
        _local.holders = []
    return _local.holders


@contextlib.contextmanager
def deferred() -> Iterator[HeldSignals]:
    """Hold the catalog's signals sent inside the block and send them merged at its end
    (or earlier, in batches, with :meth:`HeldSignals.flush`).

    Inside a transaction the held signals are sent when it commits (and dropped if it
    rolls back), like everything else the services start."""
    holder = HeldSignals()
    _holders().append(holder)
    try:
        yield holder
    finally:
        _holders().remove(holder)
        if transaction.get_connection().in_atomic_block:
            transaction.on_commit(holder.flush)
        else:
            holder.flush()


def _emit(hold: Callable[[HeldSignals], None], send: Callable[[], object]) -> None:
    holders = _holders()
    if not holders:
        send()
        return
    holder = holders[-1]
    # Held only once the write commits: a savepoint rolled back takes its signals with it.
    transaction.on_commit(lambda: hold(holder))


def send_images_added(image_ids: Iterable[int]) -> None:
    ids = list(image_ids)
    if ids:
        _emit(lambda h: h.added.extend(ids), lambda: images_added.send(sender=None, image_ids=ids))


def send_images_removed(image_ids: Iterable[int]) -> None:
    ids = list(image_ids)
    if ids:
        _emit(lambda h: h.removed.extend(ids), lambda: images_removed.send(sender=None, image_ids=ids))


def send_products_changed(changes: dict[int, Iterable[str]]) -> None:
    changes = {pk: tuple(fields) for pk, fields in changes.items() if fields}
    if not changes:
        return

    def hold(holder: HeldSignals) -> None:
        for pk, fields in changes.items():
            holder.changes.setdefault(pk, set()).update(fields)

    _emit(hold, lambda: products_changed.send(sender=None, changes=changes))

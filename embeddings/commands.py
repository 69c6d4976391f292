"""Helpers shared by the embeddings app's management commands."""

from __future__ import annotations

from django.core.management.base import CommandError

from catalog.commands import is_in_process
from embeddings.index import IndexUnavailable, get_index


def index_claim() -> None:
    """In the embedded mode this process will index: raise IndexUnavailable now if it
    cannot open the store (another process holds it)."""
    if is_in_process():
        get_index()


def index_claim_for_command() -> None:
    """:func:`index_claim`, stopping a command with the reason."""
    try:
        index_claim()
    except IndexUnavailable as exc:
        raise CommandError(str(exc)) from None

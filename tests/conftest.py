from __future__ import annotations

import pytest

from embeddings.index import reset_index


@pytest.fixture(autouse=True)
def isolated_storage(settings, tmp_path):
    """Every test gets its own media folder and its own embedded vector store."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.QDRANT_LOCAL_PATH = tmp_path / "qdrant"
    settings.QDRANT_URL = ""
    reset_index()
    yield
    reset_index()


def stored_files(settings) -> list:
    root = settings.MEDIA_ROOT
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []

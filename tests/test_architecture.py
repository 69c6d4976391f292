"""The app graph holds: catalog ← embeddings ← faces (storefront, api), no cycles.

Read from the source with ``ast`` (every import, also those inside functions), so a
violation fails here and not in a review. docs/architecture.md explains the graph.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("searchsite", "catalog", "embeddings", "analytics", "storefront", "api")
# Which apps each app may import (searchsite's settings, errors and fetcher are shared by
# all; searchsite's URLs, WSGI and Celery modules compose the apps and may import them).
ALLOWED = {
    "catalog": {"catalog", "searchsite"},
    "embeddings": {"embeddings", "catalog", "searchsite"},
    "analytics": {"analytics", "embeddings", "catalog", "searchsite"},
    "storefront": {"storefront", "analytics", "embeddings", "catalog", "searchsite"},
    "api": {"api", "analytics", "embeddings", "catalog", "searchsite"},
}
# searchsite modules every app may use: nothing in them imports an app.
SHARED_SEARCHSITE = {
    "searchsite.env",
    "searchsite.errors",
    "searchsite.fetch",
    "searchsite.celery",
    "searchsite.caching",
}


def modules(app: str) -> list[Path]:
    return sorted(p for p in (ROOT / app).rglob("*.py") if "migrations" not in p.parts)


def imported(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


@pytest.mark.parametrize("app", sorted(ALLOWED))
def test_an_app_imports_only_the_apps_below_it(app):
    wrong = []
    for path in modules(app):
        for name in imported(path):
            top = name.split(".")[0]
            if top in APPS and top not in ALLOWED[app]:
                wrong.append(f"{module_name(path)} imports {name}")
    assert wrong == []


def test_the_shared_searchsite_modules_import_no_app():
    for name in SHARED_SEARCHSITE:
        path = ROOT / (name.replace(".", "/") + ".py")
        tops = {imported_name.split(".")[0] for imported_name in imported(path)}
        assert tops & set(APPS) <= {"searchsite"}, name


def test_apps_use_only_the_shared_parts_of_searchsite():
    wrong = []
    for app in ALLOWED:
        for path in modules(app):
            for name in imported(path):
                if name.split(".")[0] == "searchsite" and not any(
                    name == shared or name.startswith(shared + ".") for shared in SHARED_SEARCHSITE
                ):
                    wrong.append(f"{module_name(path)} imports {name}")
    assert wrong == []


def test_the_index_is_told_only_through_the_catalogs_signals():
    """The receivers that queue indexing work are connected in one place; nothing calls them."""
    users = [
        module_name(path)
        for app in APPS
        for path in modules(app)
        if any(name.startswith("embeddings.receivers") for name in imported(path))
    ]
    assert users == ["embeddings.apps"]


@pytest.mark.parametrize(
    ("library", "owners"),
    [
        ("qdrant_client", {"embeddings.index.server"}),
        ("qdrant_edge", {"embeddings.index.edge"}),
        ("open_clip", {"embeddings.model", "embeddings.training"}),
        ("torch", {"embeddings.model", "embeddings.training", "embeddings.hf_model", "embeddings.hf_checkpoints"}),
        # The transformers backend, and the tiny checkpoints made offline for it.
        ("transformers", {"embeddings.hf_model", "embeddings.hf_checkpoints"}),
        ("sentencepiece", {"embeddings.hf_checkpoints"}),
    ],
)
def test_heavy_libraries_are_imported_by_their_one_module(library, owners):
    users = {
        module_name(path)
        for app in APPS
        for path in modules(app)
        if any(name == library or name.startswith(library + ".") for name in imported(path))
    }
    assert users == owners

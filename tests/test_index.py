"""The index's contract, on every engine: Qdrant Edge (the embedded mode), qdrant-client's
local mode (the Qdrant server's code path), each in a temp dir, and the index server
(``manage.py serve_index``'s, on a loopback socket, serving an Edge store)."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from embeddings.index import (
    ImagePoint,
    IndexFilters,
    IndexUnavailable,
    collection_name,
    get_index,
    image_point_id,
    reset_index,
)
from embeddings.model import EmbeddingSpace

ROOT = Path(__file__).resolve().parent.parent
SPACE = EmbeddingSpace(model="test-model", weights="w1", dimension=4)


@pytest.fixture(params=["edge", "qdrant-local", "remote"], autouse=True)
def engine(request, settings):
    server = None
    if request.param == "remote":
        server = index_server_start(settings)
    else:
        settings.VITRINE_INDEX_ENGINE = request.param
    reset_index()
    yield request.param
    reset_index()
    if server is not None:
        index_server_stop(server)


def index_server_start(settings):
    """What ``manage.py serve_index`` runs, on a thread: the Edge store served on a free
    loopback port, and this process set to use it."""
    import threading

    from embeddings.index import open_local
    from embeddings.index.remote import IndexServer

    settings.VITRINE_INDEX_ENGINE = "edge"
    server = IndexServer(("127.0.0.1", 0), open_local())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.VITRINE_INDEX_SERVER = f"127.0.0.1:{server.server_address[1]}"
    return server


def index_server_stop(server) -> None:
    server.shutdown()
    server.server_close()
    server.index.close()


LOCAL_ENGINES = pytest.mark.parametrize("engine", ["edge", "qdrant-local"], indirect=True)


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def point(image_id, product_id, vector, *, category="mugs", brand="Kito", price=10.0, is_active=True):
    payload = {"category": category, "brand": brand, "price": price, "is_active": is_active}
    return ImagePoint(image_id=image_id, product_id=product_id, vector=vector, payload=payload)


@pytest.fixture
def index():
    index = get_index()
    index.upsert(
        SPACE,
        [
            point(1, 10, unit(1, 0, 0, 0)),
            point(2, 10, unit(0.9, 0.1, 0, 0)),  # a second photo of product 10
            point(3, 20, unit(0.8, 0.2, 0, 0), category="bags", brand="Nordlys", price=50.0),
            point(4, 30, unit(0.5, 0.5, 0, 0), price=5.0),
            point(5, 40, unit(0.7, 0.3, 0, 0), is_active=False),
        ],
    )
    return index


def test_point_ids_are_stable_per_image():
    assert image_point_id(7) == image_point_id(7)
    assert image_point_id(7) != image_point_id(8)


def test_a_retried_upsert_overwrites_instead_of_duplicating(index):
    index.upsert(SPACE, [point(1, 10, unit(1, 0, 0, 0))])
    assert index.count(SPACE) == 5


def test_query_returns_one_hit_per_product_best_first(index):
    hits = index.query(SPACE, unit(1, 0, 0, 0), filters=IndexFilters(), limit=10, offset=0)

    assert [(h.product_id, h.image_id) for h in hits] == [(10, 1), (20, 3), (30, 4)]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_limit_and_offset_page_through_products(index):
    first = index.query(SPACE, unit(1, 0, 0, 0), filters=IndexFilters(), limit=2, offset=0)
    second = index.query(SPACE, unit(1, 0, 0, 0), filters=IndexFilters(), limit=2, offset=2)
    assert [h.product_id for h in first] == [10, 20]
    assert [h.product_id for h in second] == [30]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (IndexFilters(categories=("bags",)), [20]),
        (IndexFilters(brands=("Kito",)), [10, 30]),
        (IndexFilters(price_min=Decimal("6"), price_max=Decimal("20")), [10]),
        (IndexFilters(price_max=Decimal("5")), [30]),
        (IndexFilters(active=None), [10, 20, 40, 30]),
        (IndexFilters(active=False), [40]),
        (IndexFilters(exclude_product_ids=(10,)), [20, 30]),
    ],
    ids=["category", "brand", "price-range", "price-max", "inactive-included", "inactive-only", "exclude"],
)
def test_filters(index, filters, expected):
    hits = index.query(SPACE, unit(1, 0, 0, 0), filters=filters, limit=10, offset=0)
    assert [h.product_id for h in hits] == expected


def test_delete_images_and_update_product_payload(index):
    index.delete_images([1, 2])
    index.set_product_payload(20, {"category": "mugs"})

    hits = index.query(SPACE, unit(1, 0, 0, 0), filters=IndexFilters(categories=("mugs",)), limit=10, offset=0)
    assert [h.product_id for h in hits] == [20, 30]


def test_each_space_has_its_own_collection_and_the_alias_names_the_first(index, settings):
    other = EmbeddingSpace(model="test-model", weights="w2", dimension=8)
    index.ensure(other)

    assert collection_name(other) != collection_name(SPACE)
    assert index.alias_target() == collection_name(SPACE)
    assert index.count(other) == 0
    assert index.other_collections(SPACE) == {collection_name(other): 0}

    index.alias_point(other)
    assert index.alias_target() == collection_name(other)
    index.drop(collection_name(SPACE))
    assert index.other_collections(other) == {}


def test_the_store_keeps_its_points_and_alias_when_opened_again(index):
    reset_index()
    again = get_index()
    assert again.count(SPACE) == 5
    assert again.alias_target() == collection_name(SPACE)


def test_candidates_carry_the_payloads_facts_and_honour_a_score_threshold(index):
    found = index.candidates(SPACE, unit(1, 0, 0, 0), limit=10, score_threshold=0.95, with_facts=True)

    assert [(c.product_id, c.image_id) for c in found] == [(10, 1), (20, 3)]  # 30 scores 0.71
    assert found[1].facts["category"] == "bags" and found[1].facts["price"] == 50.0


def test_facts_read_once_follow_every_later_change(index):
    """Facts are product fields: a payload refresh, a photo upserted again and a new space's
    collection all show in the next read (the embedded engine keeps them in memory)."""

    def read():
        found = index.candidates(SPACE, unit(1, 0, 0, 0), limit=10, with_facts=True)
        return {c.product_id: c.facts for c in found}

    assert read()[10]["price"] == 10.0

    index.set_product_payload(10, {"category": "mugs", "brand": "Kito", "price": 12.5, "is_active": True})
    assert read()[10]["price"] == 12.5
    index.upsert(SPACE, [point(1, 10, unit(1, 0, 0, 0), price=14.0, brand="Nordlys")])
    assert (read()[10]["price"], read()[10]["brand"]) == (14.0, "Nordlys")
    assert read()[20]["category"] == "bags"  # the others kept theirs

    other = EmbeddingSpace(model="test-model", weights="w2", dimension=4)
    index.upsert(other, [point(1, 10, unit(1, 0, 0, 0), price=20.0)])
    found = index.candidates(other, unit(1, 0, 0, 0), limit=10, with_facts=True)
    assert [(c.product_id, c.facts["price"]) for c in found] == [(10, 20.0)]
    assert read()[10]["price"] == 14.0


REMOTE_ONLY = pytest.mark.parametrize("engine", ["remote"], indirect=True)


@REMOTE_ONLY
def test_the_index_server_sends_a_products_facts_once_per_connection(engine, index):
    """Facts already sent on a connection come back as the client's own objects; a
    changed product's are sent again; a new connection starts afresh."""

    def read():
        return {c.product_id: c.facts for c in index.candidates(SPACE, unit(1, 0, 0, 0), limit=10, with_facts=True)}

    first, second = read(), read()
    assert second == first and all(second[p] is first[p] for p in first)  # not sent again
    assert first[20]["category"] == "bags"

    index.set_product_payload(10, {"category": "cups", "brand": "Kito", "price": 9.0, "is_active": True})
    third = read()
    assert third[10]["category"] == "cups" and third[10] is not first[10]  # sent again
    assert third[20] is first[20]

    index.close()  # this thread's connection: the next one starts with nothing known
    fourth = read()
    assert fourth == third and fourth[20] is not third[20]


@REMOTE_ONLY
def test_a_client_that_keeps_no_facts_gets_them_every_time(engine, index):
    """A client that never said HELLO (an older one) is sent whole facts on every call."""
    import socket

    from django.conf import settings

    from embeddings.index.remote import _receive, _send, channel_key, parse_address

    key = channel_key()
    with socket.create_connection(parse_address(settings.VITRINE_INDEX_SERVER), timeout=5) as sock:
        for _ in range(2):
            _send(sock, key, ("candidates", (SPACE, unit(1, 0, 0, 0)), {"limit": 10, "with_facts": True}))
            status, found = _receive(sock, key)
            assert status == "ok"
            assert [c.facts["category"] for c in found] == ["mugs", "bags", "mugs"]


def test_attribute_filters_match_any_of_the_values(engine, settings):
    settings.VITRINE_FACET_ATTRIBUTES = ["colour"]
    index = get_index()
    index.upsert(
        SPACE,
        [
            ImagePoint(1, 10, unit(1, 0, 0, 0), {"is_active": True, "attr_colour": "red"}),
            ImagePoint(2, 20, unit(0.9, 0.1, 0, 0), {"is_active": True, "attr_colour": ["blue", "red"]}),
            ImagePoint(3, 30, unit(0.8, 0.2, 0, 0), {"is_active": True, "attr_colour": "green"}),
        ],
    )
    only = IndexFilters(attributes=(("colour", ("red",)),))
    either = IndexFilters(attributes=(("colour", ("green", "blue")),))
    assert [c.product_id for c in index.candidates(SPACE, unit(1, 0, 0, 0), limit=5, filters=only)] == [10, 20]
    assert [c.product_id for c in index.candidates(SPACE, unit(1, 0, 0, 0), limit=5, filters=either)] == [20, 30]


def test_many_photos_of_one_product_do_not_hide_the_others(index):
    """Grouping asks the engine for more points when one product's photos fill them."""
    index.upsert(SPACE, [point(100 + n, 50, unit(1, 0.001 * (n + 1), 0, 0)) for n in range(40)])

    found = index.candidates(SPACE, unit(1, 0, 0, 0), limit=4)

    assert [c.product_id for c in found] == [10, 50, 20, 30]
    assert found[1].image_id == 100  # the product's best photo


def test_vectors_come_back_for_known_images_only(index):
    vectors = index.vectors(SPACE, [1, 99])
    assert list(vectors) == [1]
    assert np.allclose(vectors[1], unit(1, 0, 0, 0), atol=1e-6)


@LOCAL_ENGINES
def test_a_store_held_by_another_process_is_reported_as_unavailable(engine, settings, tmp_path):
    script = (
        "import os, sys, time, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'searchsite.settings'; django.setup()\n"
        "from embeddings.index import get_index; get_index(); print('holding', flush=True); time.sleep(60)\n"
    )
    env = {**os.environ, "VITRINE_INDEX_PATH": str(settings.VITRINE_INDEX_PATH), "VITRINE_INDEX_ENGINE": engine}
    holder = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        reset_index()
        with pytest.raises(IndexUnavailable) as caught:
            get_index().count(SPACE)
        assert "in use by another Vitrine process" in str(caught.value)
        assert str(settings.VITRINE_INDEX_PATH) in str(caught.value)
    finally:
        holder.kill()
        holder.wait()


def test_an_unreachable_server_is_reported_as_unavailable(engine, settings):
    settings.QDRANT_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    settings.QDRANT_TIMEOUT = 1
    reset_index()
    with pytest.raises(IndexUnavailable) as caught:
        get_index().count(SPACE)
    assert "127.0.0.1:9" in str(caught.value)


@LOCAL_ENGINES
def test_a_changed_threshold_applies_to_a_stored_collection_at_its_next_optimize(engine, settings):
    """The embedded store takes the current settings when opened; a Qdrant server builds
    its graph by itself (its optimize is a no-op)."""
    index = get_index()
    vectors = np.random.default_rng(4).standard_normal((300, 4)).astype(np.float32)
    index.upsert(SPACE, [point(n + 1, n + 1, vectors[n] / np.linalg.norm(vectors[n])) for n in range(300)])
    assert index.optimize(SPACE) is False  # 300 points: under the default threshold
    reset_index()

    settings.VITRINE_INDEX_FULL_SCAN_KB = 1
    index = get_index()
    assert index.optimize(SPACE) is (engine == "edge")
    assert index.candidates(SPACE, vectors[9], limit=1)[0].image_id == 10


def test_optimize_builds_the_graph_once_a_collection_outgrows_an_exact_scan(engine, settings):
    settings.VITRINE_INDEX_FULL_SCAN_KB = 1  # 300 points × 4 floats is past it
    index = get_index()
    vectors = np.random.default_rng(3).standard_normal((300, 4)).astype(np.float32)
    index.upsert(SPACE, [point(n + 1, n + 1, vectors[n] / np.linalg.norm(vectors[n])) for n in range(300)])

    built = index.optimize(SPACE)

    if engine in ("edge", "remote"):  # the index server serves an Edge store
        assert built and index.optimize(SPACE) is False  # built once
    else:
        assert built is False  # a Qdrant server builds its graph by itself
    found = index.candidates(SPACE, vectors[6], limit=1)
    assert (found[0].image_id, index.count(SPACE)) == (7, 300)


# --- the keyword side (sparse vectors with IDF, and the terms payload) --------------------


def keyword_point(image_id, product_id, keywords: dict[str, float]):
    payload = {"category": "mugs", "brand": "Kito", "price": 10.0, "is_active": True, "terms": sorted(keywords)}
    return ImagePoint(
        image_id=image_id, product_id=product_id, vector=unit(1, 0, 0, 0), payload=payload, keywords=keywords
    )


def test_keyword_candidates_rank_by_idf_weighted_terms_and_honour_required_groups():
    index = get_index()
    index.upsert(
        SPACE,
        [
            keyword_point(1, 10, {"red": 1.0, "stripe": 1.0, "mug": 1.0}),
            keyword_point(2, 10, {"red": 1.0, "stripe": 1.0, "mug": 1.0}),  # a second photo of 10
            keyword_point(3, 20, {"red": 1.0, "mug": 1.0}),
            keyword_point(4, 30, {"blue": 1.0, "stripe": 1.0, "mug": 1.0}),
            keyword_point(5, 40, {"red": 1.0, "hat": 1.0}),
        ],
    )
    assert index.has_keywords(SPACE)
    query = {"red": 1.0, "stripe": 1.0, "mug": 1.0}
    ranked = index.keyword_candidates(SPACE, query, limit=10)
    assert [c.product_id for c in ranked][0] == 10  # all three words
    assert {c.product_id for c in ranked} == {10, 20, 30, 40}  # any word, one hit per product
    every_word = index.keyword_candidates(SPACE, query, limit=10, require=(("red",), ("stripe",), ("mug",)))
    assert [c.product_id for c in every_word] == [10]
    # A group holds alternatives (a word and its synonyms): either one satisfies it.
    either = index.keyword_candidates(SPACE, query, limit=10, require=(("red", "blue"), ("stripe",)))
    assert {c.product_id for c in either} == {10, 30}
    # IDF: "hat" (one product) outweighs "mug" (three) for a product holding one of them each.
    rare = index.keyword_candidates(SPACE, {"hat": 1.0, "mug": 1.0}, limit=10)
    assert rare[0].product_id == 40
    filtered = index.keyword_candidates(SPACE, query, limit=10, filters=IndexFilters(exclude_product_ids=(10,)))
    assert 10 not in {c.product_id for c in filtered}


def test_a_products_new_words_replace_its_old_ones_on_every_photo():
    index = get_index()
    index.upsert(SPACE, [keyword_point(1, 10, {"red": 1.0, "mug": 1.0}), keyword_point(2, 10, {"red": 1.0})])
    index.set_product_payload(10, {"terms": ["zanzibar", "lamp"]}, {"zanzibar": 1.0, "lamp": 1.0})
    assert [c.product_id for c in index.keyword_candidates(SPACE, {"zanzibar": 1.0}, limit=5)] == [10]
    assert index.keyword_candidates(SPACE, {"red": 1.0}, limit=5) == []
    required = index.keyword_candidates(SPACE, {"lamp": 1.0}, limit=5, require=(("lamp",), ("zanzibar",)))
    assert [c.product_id for c in required] == [10]


@LOCAL_ENGINES
def test_a_collection_made_before_keywords_is_searched_by_vectors_alone(engine, settings):
    if engine == "edge":
        from qdrant_edge import Distance, EdgeConfig, EdgeShard, EdgeVectorParams

        from embeddings.index.edge import META_FILE

        path = Path(settings.VITRINE_INDEX_PATH) / collection_name(SPACE)
        path.parent.mkdir(parents=True, exist_ok=True)
        EdgeShard.create(str(path), EdgeConfig(vectors={"image": EdgeVectorParams(4, Distance.Cosine)})).close()
        (path.parent / META_FILE).write_text('{"collections": {}, "aliases": {}}')
    else:
        from qdrant_client import models as qm

        index = get_index()
        index.client.create_collection(
            collection_name(SPACE), vectors_config=qm.VectorParams(size=4, distance=qm.Distance.COSINE)
        )
    index = get_index()
    index.upsert(SPACE, [keyword_point(1, 10, {"red": 1.0})])  # the keywords are left out, the point kept
    assert not index.has_keywords(SPACE)
    assert index.keyword_candidates(SPACE, {"red": 1.0}, limit=5) == []
    assert [c.product_id for c in index.candidates(SPACE, unit(1, 0, 0, 0), limit=5)] == [10]
    index.set_product_payload(10, {"terms": ["blue"]}, {"blue": 1.0})  # no keyword vector to update: no error

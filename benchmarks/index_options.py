"""Recall and speed of the embedded engine's index options, on a copy of a real store.

    .venv/bin/python benchmarks/index_options.py --data-dir /tmp/scale/100000 [--queries 60]

Takes the Edge collection of a data dir built by ``benchmarks/scale.py --keep`` (or
``manage.py make_synthetic_catalog``), copies it, and for each option measures, on the
same query vectors (demo product titles through the model, English and Chinese):

- the exact answer: the collection's vectors as one numpy matrix, top 24 by dot product;
- p50 / p95 of the nearest-24 query, and recall@24 against the exact answer, for:
  the HNSW graph as built (``hnsw_ef`` default), ``hnsw_ef`` 128 and 256, an exact scan
  (``exact=True``), and int8 scalar quantization (VITRINE_INDEX_QUANTIZATION=int8; the
  graph searched on the int8 vectors, the best candidates rescored on the originals, with
  oversampling 1 and 2);
- for catalogs made by ``make_synthetic_catalog`` (``--pool``: its ``--photos``), the
  share of hits that are variants of a drawing in the exact answer (variants of one
  drawing differ in a few pixels: their order among themselves is noise);
- the seconds ``optimize()`` took to build the quantized vectors, and the files' size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import percentile  # noqa: E402 - needs the root on sys.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument(
        "--pool",
        type=int,
        default=2000,
        help="make_synthetic_catalog's --photos: also count a hit right when it is a variant of a drawing "
        "in the exact answer (product n shows drawing (n-1) %% pool); 0: off",
    )
    args = parser.parse_args()

    os.environ["VITRINE_DATA_DIR"] = str(args.data_dir)
    os.environ.setdefault("VITRINE_TORCH_THREADS", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "searchsite.settings")
    os.environ.setdefault("LOG_LEVEL", "warning")
    import django

    django.setup()
    import numpy as np
    from qdrant_edge import (
        Distance,
        EdgeConfig,
        EdgeShard,
        EdgeVectorParams,
        QuantizationSearchParams,
        Query,
        QueryRequest,
        ScalarQuantizationConfig,
        ScalarType,
        ScrollRequest,
        SearchParams,
    )

    from catalog.demo import all_attributes
    from embeddings.index.base import collection_name
    from embeddings.index.edge import VECTOR
    from embeddings.model import get_encoder

    encoder = get_encoder()
    source = args.data_dir / "index" / collection_name(encoder.space)
    kinds = all_attributes()
    step = max(1, len(kinds) // args.queries)
    texts = [k.title.lower() if n % 2 == 0 else k.title_zh for n, k in enumerate(kinds[::step][: args.queries])]
    queries = [encoder.texts_encode([text])[0].tolist() for text in texts]

    workdir = Path(tempfile.mkdtemp(prefix="vitrine-index-options-"))
    path = workdir / "shard"
    shutil.copytree(source, path)
    shard = EdgeShard.load(str(path))
    ids, rows, offset = [], [], None
    while True:
        records, offset = shard.scroll(ScrollRequest(limit=5000, offset=offset, with_payload=False, with_vector=True))
        ids += [int(r.id) for r in records]
        rows += [r.vector[VECTOR] for r in records]
        if offset is None:
            break
    matrix, ids = np.asarray(rows, dtype=np.float32), np.asarray(ids)
    truth = [set(ids[np.argsort(-(matrix @ np.asarray(q, dtype=np.float32)))[:24]].tolist()) for q in queries]
    print(f"{len(ids):,} points of {matrix.shape[1]} dimensions, {len(queries)} queries")

    def drawing(point_id: int) -> int:
        return ((point_id >> 32) - 1) % args.pool if args.pool else point_id

    truth_drawings = [{drawing(i) for i in exact} for exact in truth]

    def measure(label: str, target, params) -> None:
        wall, recall, by_drawing = [], [], []
        for q, exact, drawings in zip(queries, truth, truth_drawings, strict=True):
            started = time.perf_counter()
            hits = target.query(
                QueryRequest(
                    query=Query.Nearest(q, using=VECTOR), limit=24, params=params, with_payload=False, with_vector=False
                )
            )
            wall.append((time.perf_counter() - started) * 1000)
            recall.append(len({int(h.id) for h in hits} & exact) / len(exact))
            by_drawing.append(sum(drawing(int(h.id)) in drawings for h in hits) / len(hits))
        print(
            f"{label:44} p50 {statistics.median(wall):6.2f} ms  p95 {percentile(wall, 0.95):6.2f} ms  "
            f"recall@24 {statistics.mean(recall):.3f}  by drawing {statistics.mean(by_drawing):.3f}"
        )

    measure("HNSW as built (hnsw_ef default)", shard, None)
    measure("HNSW hnsw_ef=128", shard, SearchParams(hnsw_ef=128))
    measure("HNSW hnsw_ef=256", shard, SearchParams(hnsw_ef=256))
    measure("exact scan", shard, SearchParams(exact=True))
    shard.close()

    config = EdgeConfig(
        vectors={VECTOR: EdgeVectorParams(size=int(matrix.shape[1]), distance=Distance.Cosine)},
        quantization_config=ScalarQuantizationConfig(type=ScalarType.Int8, quantile=0.99, always_ram=True),
    )
    shard = EdgeShard.load(str(path), config)
    started = time.perf_counter()
    shard.optimize()
    print(f"int8 quantized vectors built in {time.perf_counter() - started:.1f} s")
    for oversampling in (1.0, 2.0):
        quantization = QuantizationSearchParams(rescore=True, oversampling=oversampling)
        measure(f"int8 + rescore, oversampling {oversampling:g}", shard, SearchParams(quantization=quantization))
    measure("int8, no rescore", shard, SearchParams(quantization=QuantizationSearchParams(rescore=False)))
    shard.close()
    size = subprocess.run(["du", "-sh", str(source)], capture_output=True, text=True).stdout.split()[0]
    print(f"collection on disk (as built, without int8): {size}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

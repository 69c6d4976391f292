"""Search quality: retrieval metrics, judgments files, and the demo model's attribute accuracy.

Judgments are JSON Lines, one query per line::

    {"query": "blue dotted bag", "relevant": ["demo-7-0012", ...], "language": "en", "group": "compositional"}
    {"image": "held-out/0001.jpg", "relevant": ["demo-7-0040"], "group": "image"}

``image`` paths are relative to the judgments file. ``language`` and ``group`` are
optional; metrics are reported overall and per language and per group.

A line may give both ``query`` and ``image`` (a photo with words), and ``"expect": "none"``
with an empty ``relevant`` list for a query that should show nothing (out of domain).
``split`` (trained, held-out, checks, image) groups lines further.

R@k is the share of queries with at least one relevant product in the first k results
(the usual "recall at k" of CLIP retrieval); MRR is the mean reciprocal rank of the first
relevant product (0 beyond the results fetched); nDCG@10 uses binary relevance. Measured
on what shoppers are shown (after the relevance cutoff), they are "as shown". P(shown)
and R(shown) are the precision and recall of the whole shown set (a query showing
nothing has precision 0); "none shown" is the share of out-of-domain queries showing
nothing.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

METRICS = ("R@1", "R@5", "R@10", "MRR", "nDCG@10", "P(shown)", "R(shown)", "none shown")


@dataclass(frozen=True)
class Judgment:
    relevant: frozenset[str]
    query: str = ""
    image: Path | None = None
    language: str = ""
    group: str = ""
    split: str = ""
    expect_none: bool = False

    @property
    def label(self) -> str:
        return self.query or (self.image.name if self.image else "")


class JudgmentsError(Exception):
    pass


def judgments_load(path: Path) -> list[Judgment]:
    judgments = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise JudgmentsError(f"{path}:{number}: not JSON ({exc.msg}).") from None
        if not isinstance(row, dict):
            raise JudgmentsError(f"{path}:{number}: each line must be a JSON object.")
        query, image = row.get("query", ""), row.get("image", "")
        if not query and not image:
            raise JudgmentsError(f"{path}:{number}: give 'query', 'image', or both.")
        relevant = row.get("relevant")
        expect_none = row.get("expect") == "none"
        if expect_none:
            if relevant != []:
                raise JudgmentsError(f'{path}:{number}: "expect": "none" needs an empty \'relevant\' list.')
        elif not isinstance(relevant, list) or not relevant or not all(isinstance(r, str) for r in relevant):
            raise JudgmentsError(
                f"{path}:{number}: 'relevant' must be a non-empty list of external ids "
                '(or empty, with "expect": "none").'
            )
        image_path = (path.parent / image) if image else None
        if image_path is not None and not image_path.is_file():
            raise JudgmentsError(f"{path}:{number}: image {image_path} does not exist.")
        judgments.append(
            Judgment(
                relevant=frozenset(relevant),
                query=query,
                image=image_path,
                language=str(row.get("language", "")),
                group=str(row.get("group", "")),
                split=str(row.get("split", "")),
                expect_none=expect_none,
            )
        )
    if not judgments:
        raise JudgmentsError(f"{path}: no judgments.")
    return judgments


def shown_metrics(shown_ids: Sequence[str], relevant: frozenset[str], *, expect_none: bool = False) -> dict:
    """Metrics of what shoppers are shown, best first: the ranking ones, and the shown
    set's precision and recall; for an out-of-domain query, only whether nothing shows."""
    if expect_none:
        return {"none shown": float(not shown_ids)}
    metrics = ranking_metrics(shown_ids, relevant)
    found = sum(1 for product_id in shown_ids if product_id in relevant)
    metrics["P(shown)"] = found / len(shown_ids) if shown_ids else 0.0
    metrics["R(shown)"] = found / len(relevant)
    return metrics


def ranking_metrics(ranked_ids: Sequence[str], relevant: frozenset[str]) -> dict[str, float]:
    hits = [1.0 if product_id in relevant else 0.0 for product_id in ranked_ids]
    first = next((rank for rank, hit in enumerate(hits, start=1) if hit), None)
    dcg = sum(hit / math.log2(rank + 1) for rank, hit in enumerate(hits[:10], start=1))
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(len(relevant), 10) + 1))
    return {
        "R@1": float(first is not None and first <= 1),
        "R@5": float(first is not None and first <= 5),
        "R@10": float(first is not None and first <= 10),
        "MRR": 1.0 / first if first else 0.0,
        "nDCG@10": dcg / ideal if ideal else 0.0,
    }


def metrics_summarise(rows: list[tuple[Judgment, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean of each metric: overall, per language (``lang:en``), per group (``group:image``) and
    per group and language (``compositional/zh``)."""
    buckets: dict[str, list[dict[str, float]]] = defaultdict(list)
    for judgment, metrics in rows:
        buckets["overall"].append(metrics)
        if judgment.language:
            buckets[f"lang:{judgment.language}"].append(metrics)
        if judgment.group:
            buckets[f"group:{judgment.group}"].append(metrics)
        if judgment.group and judgment.language:
            buckets[f"{judgment.group}/{judgment.language}"].append(metrics)
        if judgment.split:
            buckets[f"split:{judgment.split}"].append(metrics)
            if judgment.language:
                buckets[f"split:{judgment.split}/{judgment.language}"].append(metrics)
    summary = {}
    for name, values in buckets.items():
        summary[name] = {}
        for metric in METRICS:
            present = [v[metric] for v in values if metric in v]
            if present:
                summary[name][metric] = float(np.mean(present))
        summary[name]["queries"] = len(values)
    return summary


def summary_table(summary: dict[str, dict[str, float]]) -> str:
    header = f"{'':<24}{'queries':>8}" + "".join(f"{m:>9}" for m in METRICS)
    lines = [header, "-" * len(header)]
    for name in sorted(summary, key=lambda n: (n != "overall", n)):
        row = summary[name]
        cells = "".join(f"{row[m]:>9.3f}" if m in row else f"{'':>9}" for m in METRICS)
        lines.append(f"{name:<24}{int(row['queries']):>8}" + cells)
    return "\n".join(lines)


def summary_chart(summary: dict[str, dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    names = sorted(summary, key=lambda n: (n != "overall", n))
    figure, axes = pyplot.subplots(figsize=(max(6, 1.4 * len(names) + 2), 4))
    width = 0.8 / len(METRICS)
    for offset, metric in enumerate(METRICS):
        positions = [i + offset * width for i in range(len(names))]
        axes.bar(positions, [summary[n].get(metric, 0.0) for n in names], width=width, label=metric)
    axes.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, rotation=20, ha="right")
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("score")
    axes.set_title(title)
    axes.legend(ncols=len(METRICS), fontsize="small", loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


# --- the demo model's own figures -------------------------------------------------------


@dataclass(frozen=True)
class AttributeProbe:
    """Held-out renders with known attributes, for zero-shot attribute accuracy."""

    images: list
    attributes: list


def attribute_accuracy(
    encode_images: Callable[[list], np.ndarray],
    encode_texts: Callable[[list[str]], np.ndarray],
    probe: AttributeProbe,
) -> dict[str, float]:
    """Top-1 accuracy of naming each attribute of a held-out render, in English and Chinese,
    and the R@1 of compositional queries ("blue dotted bag") over all the held-out renders."""
    from catalog.demo import COLOURS, KINDS, PATTERNS

    image_rows = encode_images(probe.images)
    results: dict[str, float] = {}
    names = {
        "kind": {k: (v[0], v[1]) for k, v in KINDS.items()},
        "colour": {k: (v[0], v[1]) for k, v in COLOURS.items()},
        "pattern": {k: (v[0], v[1]) for k, v in PATTERNS.items()},
    }
    for field, table in names.items():
        keys = sorted(table)
        for language_index, language in enumerate(("en", "zh")):
            text_rows = encode_texts([table[k][language_index] for k in keys])
            predicted = np.argmax(image_rows @ text_rows.T, axis=1)
            truth = np.array([keys.index(getattr(a, field)) for a in probe.attributes])
            results[f"{field}_top1_{language}"] = float(np.mean(predicted == truth))

    combos = sorted({a for a in probe.attributes if a.pattern != "plain"}, key=str)
    for language in ("en", "zh"):
        texts = [a.title if language == "en" else a.title_zh for a in combos]
        text_rows = encode_texts(texts)
        best = np.argmax(text_rows @ image_rows.T, axis=1)
        results[f"compositional_r1_{language}"] = float(
            np.mean([probe.attributes[j] == combo for j, combo in zip(best, combos, strict=True)])
        )
    return results

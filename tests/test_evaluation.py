from __future__ import annotations

import json
import math

import pytest
from django.core.management import CommandError, call_command

from embeddings.evaluation import judgments_load, metrics_summarise, ranking_metrics


def test_ranking_metrics_for_a_first_hit_at_rank_two():
    metrics = ranking_metrics(["a", "b", "c", "d"], frozenset({"b", "d"}))
    ideal = 1 + 1 / math.log2(3)
    assert metrics["R@1"] == 0.0
    assert metrics["R@5"] == metrics["R@10"] == 1.0
    assert metrics["MRR"] == 0.5
    assert metrics["nDCG@10"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / ideal)


def test_a_query_with_nothing_relevant_found_scores_zero():
    assert ranking_metrics(["x", "y"], frozenset({"a"})) == {
        "R@1": 0.0,
        "R@5": 0.0,
        "R@10": 0.0,
        "MRR": 0.0,
        "nDCG@10": 0.0,
    }


def test_summaries_are_per_language_and_group(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text(
        json.dumps({"query": "red mug", "relevant": ["a"], "language": "en", "group": "c"})
        + "\n"
        + json.dumps({"query": "红色杯子", "relevant": ["a"], "language": "zh", "group": "c"})
        + "\n"
    )
    first, second = judgments_load(path)
    summary = metrics_summarise(
        [(first, ranking_metrics(["a"], first.relevant)), (second, ranking_metrics(["b"], second.relevant))]
    )
    assert summary["overall"]["R@1"] == 0.5
    assert summary["lang:en"]["R@1"] == 1.0
    assert summary["c/zh"]["R@1"] == 0.0
    assert summary["group:c"]["queries"] == 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "j.jsonl:1: not JSON"),
        ('["a"]', "each line must be a JSON object"),
        ('{"relevant": ["a"]}', "give 'query', 'image', or both"),
        ('{"query": "x", "relevant": []}', "'relevant' must be a non-empty list"),
        ('{"query": "x", "relevant": ["a"], "expect": "none"}', "needs an empty 'relevant' list"),
        ('{"image": "missing.jpg", "relevant": ["a"]}', "missing.jpg does not exist"),
    ],
)
def test_a_bad_judgments_file_is_refused_with_the_line(tmp_path, line, message):
    path = tmp_path / "j.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("evaluate_search", "--judgments", str(path), verbosity=0)

"""Quality floors of the shipped demo model, a little below what was measured (README,
"Search quality"), so that a regression fails the build."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from catalog.demo import all_attributes, demo_attribute_render
from embeddings.evaluation import AttributeProbe, attribute_accuracy
from embeddings.model import get_encoder

# Measured (README): 0.98-0.99 for each attribute, 0.975 compositional, on this probe.
ATTRIBUTE_FLOORS = {
    "kind_top1_en": 0.95,
    "kind_top1_zh": 0.95,
    "colour_top1_en": 0.95,
    "colour_top1_zh": 0.95,
    "pattern_top1_en": 0.95,
    "pattern_top1_zh": 0.95,
    "compositional_r1_en": 0.93,
    "compositional_r1_zh": 0.93,
}


@pytest.mark.slow
def test_the_shipped_model_names_kind_colour_and_pattern_of_held_out_renders():
    encoder = get_encoder()
    assert encoder.space.model == "vitrine-demo"
    combinations = all_attributes()
    pictures = [demo_attribute_render(a, stream="probe", index=3) for a in combinations]

    figures = attribute_accuracy(encoder.images_encode, encoder.texts_encode, AttributeProbe(pictures, combinations))

    below = {name: round(figures[name], 3) for name, floor in ATTRIBUTE_FLOORS.items() if figures[name] < floor}
    assert below == {}


@pytest.mark.slow
def test_search_quality_through_the_search_engine(quality_shop, tmp_path):
    out = io.StringIO()
    call_command("evaluate_search", "--judgments", str(quality_shop), "--output", str(tmp_path), stdout=out)

    results = json.loads((tmp_path / "results.json").read_text())
    assert (tmp_path / "results.png").read_bytes()[:4] == b"\x89PNG"
    assert "R@1" in out.getvalue() and "lang:zh" in out.getvalue()
    assert results["compositional/en"]["R@1"] >= 0.95
    assert results["compositional/zh"]["R@1"] >= 0.95
    assert abs(results["compositional/en"]["R@1"] - results["compositional/zh"]["R@1"]) <= 0.03
    assert results["group:colour"]["R@10"] >= 0.95
    assert results["group:kind"]["R@10"] >= 0.95
    assert results["group:image"]["R@1"] >= 0.9
    held_out_floors_check(results)


# Measured on this 150-product shop with the shipped model (README, "Search quality"): 1.000
# for every family below but the unlisted synonyms (0.28 / 0.36: words neither the synonym
# table nor the model knows, left to show it).
HELD_OUT_FLOORS = {
    "paraphrase/en": 0.95,
    "paraphrase/zh": 0.95,
    "filler/en": 0.95,
    "filler/zh": 0.95,
    "measure-word/zh": 0.95,
    "split:held-out/zh": 0.95,
    "split:trained/en": 0.97,
    "split:trained/zh": 0.97,
    "group:brand+kind": 0.98,
    "group:photo+words": 0.9,
}


def held_out_floors_check(results: dict) -> None:
    """Held-out phrasings, brands, nonsense and photo + words, through the shoppers' engine."""
    below = {
        name: round(results[name]["R@1"], 3) for name, floor in HELD_OUT_FLOORS.items() if results[name]["R@1"] < floor
    }
    assert below == {}
    # Out-of-domain queries ("laptop", "asdfgh", 🙂, 一只可爱的猫咪…) show nothing.
    assert results["group:out-of-domain"]["none shown"] >= 0.95
    # A colour or a kind alone shows that colour or kind (precision of everything shown).
    assert results["group:colour"]["P(shown)"] >= 0.9
    assert results["group:kind"]["P(shown)"] >= 0.9

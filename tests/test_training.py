"""Training: the loss, the captions, a short real run, and the checkpoint folder."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from catalog.demo import Attributes
from embeddings import training
from embeddings.evaluation import AttributeProbe, attribute_accuracy


def test_with_one_caption_per_image_the_loss_is_open_clips_clip_loss():
    import torch
    from open_clip.loss import ClipLoss

    torch.manual_seed(0)
    images = torch.nn.functional.normalize(torch.randn(16, 32), dim=-1)
    texts = torch.nn.functional.normalize(torch.randn(16, 32), dim=-1)
    scale = torch.tensor(14.3)

    ours = training.contrastive_loss(images, texts, scale, torch.eye(16))
    theirs = ClipLoss()(images, texts, scale)

    assert float(ours) == pytest.approx(float(theirs), rel=1e-6)


def test_a_caption_is_a_positive_for_every_image_it_is_true_of():
    red_mug = training.attribute_facts(Attributes("mug", "red", "striped"))
    red_hat = training.attribute_facts(Attributes("hat", "red", "plain"))
    blue_mug = training.attribute_facts(Attributes("mug", "blue", "striped"))
    captions = [
        training.Caption("red", frozenset({("colour", "red")}), "en"),
        training.Caption("条纹杯子", frozenset({("pattern", "striped"), ("kind", "mug")}), "zh"),
        training.Caption("red plain hat", frozenset(red_hat), "en"),
    ]

    matrix = training.match_matrix(captions, [red_mug, red_hat, blue_mug])

    assert matrix.tolist() == [[1, 1, 0], [1, 0, 1], [0, 1, 0]]


def test_captions_come_in_both_languages_and_state_only_true_facts():
    attributes = Attributes("umbrella", "grey", "checked")
    rng = random.Random(1)
    captions = [training.demo_caption(attributes, rng) for _ in range(400)]
    facts = training.attribute_facts(attributes)

    assert {c.language for c in captions} == {"en", "zh"}
    assert all(c.facts <= facts for c in captions)
    texts = {c.text for c in captions}
    assert {"grey checked umbrella", "灰色格子雨伞", "grey", "雨伞", "checked"} <= texts
    # Half are phrased as shoppers write: plurals, synonyms, fillers, traditional characters.
    joined = " | ".join(texts)
    for phrasing in ("umbrellas", "parasol", "gray", "i want a", "雨傘", "我想要", "一个"):
        assert phrasing in joined, phrasing


def test_held_out_combinations_are_never_trained_on():
    trained, held_out = training.demo_training_split()
    assert set(trained).isdisjoint(held_out)
    assert len(held_out) == 52
    data = training.demo_training_set(image_count=300, image_size=32, seed=5, workers=1, progress=False)
    trained_facts = {training.attribute_facts(a) for a in trained}
    assert all(f in trained_facts for f in data.facts)
    assert data.images.shape == (300, 3, 32, 32)


def test_attribute_accuracy_scores_a_perfect_and_a_useless_encoder():
    attributes = [Attributes(k, c, "striped") for k in ("mug", "hat") for c in ("red", "blue")]
    from catalog.demo import COLOURS, KINDS, PATTERNS

    vocabulary = {}
    for table in (KINDS, COLOURS, PATTERNS):
        for key, names in table.items():
            vocabulary[names[0]] = vocabulary[names[1]] = key
    keys = sorted(set(vocabulary.values()))

    def facts_vector(values) -> np.ndarray:
        vector = np.zeros(len(keys), dtype=np.float32)
        for value in values:
            vector[keys.index(value)] = 1
        return vector / np.linalg.norm(vector)

    def encode_images(pictures):  # the "pictures" are the attributes themselves
        return np.stack([facts_vector([a.kind, a.colour, a.pattern]) for a in pictures])

    def encode_texts(texts):
        rows = []
        for text in texts:
            words = [key for name, key in vocabulary.items() if name and name.lower() in text.lower()]
            rows.append(facts_vector(words or [keys[0]]))
        return np.stack(rows)

    perfect = attribute_accuracy(encode_images, encode_texts, AttributeProbe(attributes, attributes))
    assert perfect["colour_top1_en"] == perfect["kind_top1_zh"] == perfect["compositional_r1_en"] == 1.0

    def always_red(pictures):
        return np.stack([facts_vector(["red"]) for _ in pictures])

    constant = attribute_accuracy(always_red, encode_texts, AttributeProbe(attributes, attributes))
    assert constant["colour_top1_en"] == constant["colour_top1_zh"] == 0.5  # right for the red half
    assert constant["compositional_r1_en"] < 1.0


@pytest.mark.slow
def test_a_short_run_learns_colour_well_above_chance():
    # Bare captions: 120 steps are too few to learn from shoppers' phrasing too (the shipped
    # model's 3,000 are not); this checks the loop learns.
    data = training.demo_training_set(image_count=1200, image_size=64, seed=3, progress=False, varied_share=0)
    model, _, normalise, tokenizer = training.model_create("vitrine-demo", None, seed=3)
    config = training.TrainingConfig(steps=120, batch_size=64, learning_rate=2e-3, warmup_steps=10, seed=3)

    report = training.train(
        model=model, normalise=normalise, tokenizer=tokenizer, data=data, config=config, progress=False
    )

    assert np.mean(report.losses[-20:]) < np.mean(report.losses[:20]) - 0.3
    from catalog.demo import all_attributes, demo_attribute_render

    probe_attributes = all_attributes()[::3]
    pictures = [demo_attribute_render(a, stream="probe", index=0) for a in probe_attributes]
    encode_images, encode_texts = training.encoders(model, normalise, tokenizer, 64)
    figures = attribute_accuracy(encode_images, encode_texts, AttributeProbe(pictures, probe_attributes))
    assert figures["colour_top1_en"] > 0.3  # chance is 1/11


@pytest.mark.django_db(transaction=True)
def test_train_clip_writes_a_folder_the_model_setting_loads(tmp_path, settings):
    from django.core.management import call_command

    from embeddings.model import get_encoder, reset_encoder

    folder = tmp_path / "checkpoint"
    call_command(
        "train_clip",
        "--output",
        str(folder),
        "--steps",
        "3",
        "--images",
        "200",
        "--batch-size",
        "16",
        "--probe-renders",
        "0",
        verbosity=0,
    )

    card = json.loads((folder / "model_card.json").read_text())
    assert card["steps"] == 3
    assert card["command"].startswith("python manage.py train_clip --output")
    assert len(card["loss_log"]) >= 1
    assert (folder / "open_clip_model.safetensors").stat().st_size < 10 * 1024 * 1024
    settings.VITRINE_CLIP_PRETRAINED = f"local-dir:{folder}"
    reset_encoder()
    try:
        encoder = get_encoder()
        assert encoder.space.model == "checkpoint"
        assert encoder.space.weights.startswith("local-dir:open_clip_model.safetensors@")
        assert encoder.texts_encode(["红色条纹杯子"]).shape == (1, 64)
    finally:
        reset_encoder()


@pytest.mark.django_db(transaction=True)
def test_fine_tuning_on_the_catalog_uses_its_photos_and_titles(tmp_path):
    from django.core.management import call_command

    call_command("load_demo_catalog", "--products", "12", "--seed", "4", verbosity=0)
    folder = tmp_path / "tuned"

    call_command(
        "train_clip",
        "--output",
        str(folder),
        "--from-catalog",
        "--model",
        "vitrine-tiny",
        "--steps",
        "2",
        "--batch-size",
        "8",
        verbosity=0,
    )

    card = json.loads((folder / "model_card.json").read_text())
    assert card["data"] == "catalog images and titles"
    assert card["model"] == "vitrine-tiny"
    assert (folder / "open_clip_config.json").is_file()


def test_training_pixels_match_what_the_model_sees_when_searching():
    """Training caches images as uint8 arrays (a copy of the resize and crop); after
    normalising they must equal open_clip's own eval transform, or training and search
    would see different pictures."""
    import open_clip
    import torch

    from catalog.demo import demo_attribute_render
    from embeddings.model import MODEL_CONFIG_DIR

    open_clip.add_model_config(MODEL_CONFIG_DIR)
    _, _, preprocess = open_clip.create_model_and_transforms("vitrine-demo")
    normalise = next(t for t in preprocess.transforms if type(t).__name__ == "Normalize")
    picture = demo_attribute_render(Attributes("vase", "pink", "dotted"), stream="probe", index=0)

    cached = torch.from_numpy(training.model_input_array(picture, 64)).float() / 255
    ours = (cached - torch.tensor(normalise.mean).view(3, 1, 1)) / torch.tensor(normalise.std).view(3, 1, 1)

    assert torch.allclose(ours, preprocess(picture), atol=1e-5)

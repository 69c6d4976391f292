"""The model module with the project's tiny open_clip config (random weights, fixed seed)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from embeddings.model import ModelUnavailable, get_encoder, reset_encoder

ROOT = Path(__file__).resolve().parent.parent


def test_images_and_texts_become_unit_float32_rows():
    encoder = get_encoder()
    image_rows = encoder.images_encode([Image.new("RGB", (50, 80), (255, 0, 0)), Image.new("RGB", (90, 20))])
    text_rows = encoder.texts_encode(["red mug", "红色条纹杯子", ""])

    assert image_rows.dtype == text_rows.dtype == np.float32
    assert image_rows.shape == (2, encoder.space.dimension)
    assert text_rows.shape == (3, encoder.space.dimension)
    assert np.allclose(np.linalg.norm(image_rows, axis=1), 1.0, atol=1e-5)
    assert np.allclose(np.linalg.norm(text_rows, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(text_rows[0], text_rows[1])


@pytest.mark.slow
def test_the_untrained_model_is_the_same_in_every_process(settings):
    """Random weights come from a fixed seed, so a worker and the web agree on vectors."""
    settings.VITRINE_CLIP_MODEL = "vitrine-tiny"
    settings.VITRINE_CLIP_PRETRAINED = ""
    reset_encoder()
    try:
        here = get_encoder().texts_encode(["blue dotted bag"])[0]
        assert get_encoder().space.weights == "random-init-seed0"
    finally:
        reset_encoder()
    script = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='searchsite.settings'; django.setup();"
        "from embeddings.model import get_encoder;"
        "print(','.join(repr(float(x)) for x in get_encoder().texts_encode(['blue dotted bag'])[0]))"
    )
    env = {**os.environ, "VITRINE_CLIP_MODEL": "vitrine-tiny", "VITRINE_CLIP_PRETRAINED": ""}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=300
    )
    there = np.array([float(x) for x in result.stdout.strip().splitlines()[-1].split(",")], dtype=np.float32)
    assert np.allclose(here, there, atol=1e-5)


def test_an_unknown_model_name_is_refused_with_the_setting_named(settings):
    settings.VITRINE_CLIP_MODEL = "ViT-Nonexistent-1"
    settings.VITRINE_CLIP_PRETRAINED = ""
    reset_encoder()
    try:
        with pytest.raises(ModelUnavailable) as caught:
            get_encoder()
        assert "VITRINE_CLIP_MODEL='ViT-Nonexistent-1' is not an open_clip model name" in str(caught.value)
    finally:
        reset_encoder()


def test_a_missing_local_dir_is_refused_with_the_setting_named(settings, tmp_path):
    settings.VITRINE_CLIP_PRETRAINED = f"local-dir:{tmp_path / 'nothing'}"
    reset_encoder()
    try:
        with pytest.raises(ModelUnavailable) as caught:
            get_encoder()
        assert "VITRINE_CLIP_PRETRAINED" in str(caught.value)
        assert "open_clip_config.json does not exist" in str(caught.value)
    finally:
        reset_encoder()


def test_a_checkpoint_file_loads_and_names_its_own_space(settings, tmp_path):
    import torch

    checkpoint = tmp_path / "tiny.pt"
    torch.save(get_encoder().model.state_dict(), checkpoint)
    settings.VITRINE_CLIP_PRETRAINED = str(checkpoint)
    reset_encoder()
    try:
        encoder = get_encoder()
        assert encoder.space.weights.startswith("tiny.pt@")
        reloaded = encoder.texts_encode(["hat"])[0]
    finally:
        reset_encoder()
    assert np.allclose(reloaded, get_encoder().texts_encode(["hat"])[0], atol=1e-5)


@pytest.mark.slow
def test_a_pretrained_tag_fails_fast_offline_naming_the_settings(tmp_path):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "VITRINE_CLIP_MODEL": "ViT-B-32",
        "VITRINE_CLIP_PRETRAINED": "laion2b_s34b_b79k",
        "VITRINE_MODEL_CACHE_DIR": str(tmp_path / "empty-cache"),
        "VITRINE_DATA_DIR": str(tmp_path),
    }
    # The libraries are imported before the clock starts: their import (~6 s cold here) is
    # paid by every load; what is measured is the absence of download retries (~50 s).
    script = (
        "import django, time; django.setup(); from embeddings.model import get_encoder, ModelUnavailable\n"
        "import torch, open_clip\n"
        "started = time.monotonic()\n"
        "try:\n    get_encoder()\nexcept ModelUnavailable as exc:\n"
        "    print(f'{time.monotonic() - started:.2f}'); print(exc)\n"
    )
    env["DJANGO_SETTINGS_MODULE"] = "searchsite.settings"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    lines = result.stdout.strip().splitlines()
    assert len(lines) >= 2, result.stderr
    load_seconds = float(lines[0])
    message = "\n".join(lines[1:])
    assert load_seconds < 5, f"loading took {load_seconds} s"
    assert "VITRINE_CLIP_MODEL='ViT-B-32'" in message
    assert "VITRINE_CLIP_PRETRAINED='laion2b_s34b_b79k'" in message
    assert "HF_HUB_OFFLINE" in message
    assert time.monotonic() - started < 60  # the whole process, imports included


def test_an_unreachable_hub_fails_in_seconds(settings, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    settings.VITRINE_CLIP_MODEL = "ViT-B-32"
    settings.VITRINE_CLIP_PRETRAINED = "laion2b_s34b_b79k"
    settings.VITRINE_MODEL_CACHE_DIR = tmp_path
    reset_encoder()
    started = time.monotonic()
    try:
        with pytest.raises(ModelUnavailable) as caught:
            get_encoder()
    finally:
        reset_encoder()
    assert time.monotonic() - started < 5
    assert "127.0.0.1:9 cannot be reached" in str(caught.value)


def test_an_unavailable_cuda_device_is_refused(settings):
    import torch

    if torch.cuda.is_available():
        settings.VITRINE_DEVICE = "cuda:99"
    else:
        settings.VITRINE_DEVICE = "cuda"
    reset_encoder()
    try:
        with pytest.raises(ModelUnavailable):
            get_encoder()
    finally:
        reset_encoder()

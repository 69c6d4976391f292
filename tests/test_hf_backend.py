"""The transformers backend (VITRINE_CLIP_MODEL=hf-transformers:…) on tiny checkpoints made here
by the documented command's code (embeddings.hf_checkpoints): the real model and processor
classes, random weights, no download."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.test import Client
from PIL import Image

from catalog import services
from embeddings.hf_checkpoints import KINDS, tiny_checkpoint_make
from embeddings.model import ModelUnavailable, encoder_for, get_encoder, reset_encoder
from embeddings.search import SearchQuery, catalog_search
from tests import images

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = [Image.new("RGB", (50, 80), (255, 0, 0)), Image.open(io.BytesIO(images.noise_jpeg(3))).convert("RGB")]
TEXTS = ["Red striped mug", "红色条纹杯子", "blue dotted bag in cotton", ""]


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """One tiny checkpoint of each kind for the whole run."""
    root = tmp_path_factory.mktemp("hf-checkpoints")
    return {kind: tiny_checkpoint_make(kind, root / kind) for kind in KINDS}


@pytest.fixture
def hf_model(settings, tiny_checkpoints):
    """Configure a tiny checkpoint: ``hf_model("clip")`` returns its encoder."""

    def configure(kind: str):
        settings.VITRINE_CLIP_MODEL = f"hf-transformers:{tiny_checkpoints[kind]}"
        reset_encoder()
        return get_encoder()

    yield configure
    reset_encoder()


def direct_vectors(folder: Path, photos, texts) -> tuple[np.ndarray, np.ndarray]:
    """The model card's way: the processor, then get_image_features / get_text_features."""
    import torch
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    if model.config.model_type == "siglip":  # trained on lowercased texts padded to the full length
        text_inputs = processor(
            text=[t.lower() for t in texts],
            padding="max_length",
            max_length=model.config.text_config.max_position_embeddings,
            return_tensors="pt",
        )
    else:
        text_inputs = processor(text=texts, padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        image_features = model.get_image_features(**processor(images=photos, return_tensors="pt")).pooler_output
        text_features = model.get_text_features(**text_inputs).pooler_output

    def normalised(features):
        array = features.numpy()
        return array / np.linalg.norm(array, axis=1, keepdims=True)

    return normalised(image_features), normalised(text_features)


@pytest.mark.parametrize("kind", KINDS)
def test_vectors_equal_a_direct_transformers_call(kind, hf_model, tiny_checkpoints):
    encoder = hf_model(kind)
    image_rows, text_rows = encoder.images_encode(PHOTOS), encoder.texts_encode(TEXTS)
    expected_images, expected_texts = direct_vectors(tiny_checkpoints[kind], PHOTOS, TEXTS)

    assert image_rows.dtype == text_rows.dtype == np.float32
    assert str(encoder.dtype) == "torch.float32"  # float16 is for CUDA devices only
    assert image_rows.shape == (2, encoder.space.dimension) and text_rows.shape == (4, encoder.space.dimension)
    assert np.abs(image_rows - expected_images).max() < 1e-5
    assert np.abs(text_rows - expected_texts).max() < 1e-5
    assert not np.allclose(text_rows[0], text_rows[1])  # the Chinese query is not the English one


@pytest.mark.parametrize("kind", KINDS)
def test_texts_in_batches_encode_as_one_at_a_time(kind, hf_model):
    """Padding is per batch for CLIP: a text's vector must not depend on its neighbours."""
    encoder = hf_model(kind)
    together = encoder.texts_encode(TEXTS)
    alone = np.concatenate([encoder.texts_encode([text]) for text in TEXTS])
    assert np.abs(together - alone).max() < 1e-5


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("kind", "query"),
    [("clip", "striped mug"), ("chinese-clip", "红色条纹杯子"), ("siglip", "Striped mug"), ("siglip2", "条纹杯子")],
)
def test_a_shop_indexed_with_a_transformers_model_is_found_by_text_and_by_photo(kind, query, hf_model):
    encoder = hf_model(kind)
    products = []
    for number in range(4):
        product = services.product_upsert(external_id=f"sku-{number}", title=f"Striped mug {number}").product
        services.image_create(product=product, content=images.noise_jpeg(number))  # indexed after commit
        products.append(product)

    by_text = catalog_search(SearchQuery(text=query, relevant_only=False, limit=24))
    photo = Image.open(io.BytesIO(images.noise_jpeg(2))).convert("RGB")
    by_photo = catalog_search(SearchQuery(image=photo, relevant_only=False, limit=1))
    page = Client().get("/", {"q": query})

    assert by_text.embedding_space == by_photo.embedding_space == encoder.space.id
    assert {hit.product.pk for hit in by_text.hits} == {p.pk for p in products}
    assert by_photo.hits[0].product.pk == products[2].pk
    assert by_photo.hits[0].score == pytest.approx(1.0, abs=1e-4)  # the same photo
    assert page.status_code == 200 and "Striped mug 1" in page.content.decode()


def test_each_checkpoint_has_its_own_embedding_space(hf_model, tiny_checkpoints, tmp_path):
    demo = get_encoder().space  # the open_clip demo model of the test settings
    clip, siglip = hf_model("clip").space, hf_model("siglip").space
    other_clip = tiny_checkpoint_make("clip", tmp_path / "clip", seed=1)
    retrained = encoder_for(f"hf-transformers:{other_clip}", "").space

    assert clip.model == f"hf-transformers:{tiny_checkpoints['clip'].name}"
    assert clip.weights.startswith("local-dir:model.safetensors@")
    assert len({demo.id, clip.id, siglip.id, retrained.id}) == 4
    assert retrained.model == clip.model  # same folder name, other weights: another space all the same


def test_pages_name_the_model_without_loading_it(settings):
    from embeddings.model import configured_model_label

    settings.VITRINE_CLIP_MODEL = "hf-transformers:OFA-Sys/chinese-clip-vit-base-patch16"
    assert configured_model_label() == "OFA-Sys/chinese-clip-vit-base-patch16"
    settings.VITRINE_CLIP_MODEL = "hf-transformers:/srv/models/shop-clip"
    assert configured_model_label() == "shop-clip"


def test_a_hub_id_not_in_the_cache_fails_offline_naming_the_settings(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings.VITRINE_CLIP_MODEL = "hf-transformers:openai/clip-vit-base-patch32"
    settings.VITRINE_MODEL_CACHE_DIR = tmp_path / "empty-cache"
    reset_encoder()
    try:
        with pytest.raises(ModelUnavailable) as caught:
            get_encoder()
    finally:
        reset_encoder()
    message = str(caught.value)
    assert "VITRINE_CLIP_MODEL='hf-transformers:openai/clip-vit-base-patch32'" in message
    assert "HF_HUB_OFFLINE" in message and "VITRINE_MODEL_CACHE_DIR" in message


def test_a_hub_id_in_the_cache_loads_without_the_network_and_names_its_commit(
    settings, tiny_checkpoints, tmp_path, monkeypatch
):
    """The hub cache's layout, as `hf download --cache-dir` leaves it: the snapshot's folder is the commit."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / "models--acme--tiny-clip"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in tiny_checkpoints["clip"].iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings.VITRINE_MODEL_CACHE_DIR = tmp_path / "cache"
    settings.VITRINE_CLIP_MODEL = "hf-transformers:acme/tiny-clip"
    reset_encoder()
    try:
        space = get_encoder().space
    finally:
        reset_encoder()
    assert (space.model, space.weights) == ("hf-transformers:acme/tiny-clip", f"hf:{commit}")


def test_a_folder_without_a_config_says_what_is_missing(settings, tmp_path):
    (tmp_path / "half").mkdir()
    settings.VITRINE_CLIP_MODEL = f"hf-transformers:{tmp_path / 'half'}"
    reset_encoder()
    try:
        with pytest.raises(ModelUnavailable) as caught:
            get_encoder()
    finally:
        reset_encoder()
    assert f"VITRINE_CLIP_MODEL='hf-transformers:{tmp_path / 'half'}'" in str(caught.value)
    assert f"{tmp_path / 'half' / 'config.json'} does not exist" in str(caught.value)


def test_fine_tuning_a_transformers_model_is_refused_with_a_reason(tiny_checkpoints):
    from embeddings.training import model_create

    with pytest.raises(ModelUnavailable, match="training and fine-tuning work on open_clip models only"):
        model_create(f"hf-transformers:{tiny_checkpoints['clip']}", None, 0)


def test_the_tiny_checkpoint_command_writes_a_loadable_folder(tmp_path, settings):
    from django.core.management import call_command

    out = io.StringIO()
    call_command("make_hf_checkpoint", str(tmp_path / "zh"), "--kind", "chinese-clip", stdout=out)
    assert f"VITRINE_CLIP_MODEL=hf-transformers:{tmp_path / 'zh'}" in out.getvalue()
    encoder = encoder_for(f"hf-transformers:{tmp_path / 'zh'}", "")
    tokens = encoder.tokenizer.convert_ids_to_tokens(encoder.tokens(["红色条纹杯子"])["input_ids"][0])
    assert tokens == ["[CLS]", "红", "色", "条", "纹", "杯", "子", "[SEP]"]  # every character known


def test_the_web_import_path_does_not_import_transformers(tiny_checkpoints):
    script = (
        "import os, sys, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'searchsite.settings'; django.setup()\n"
        "import catalog.models, api.views, storefront.views, searchsite.urls, embeddings.tasks\n"
        "from django.urls import resolve; resolve('/')\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    env = {**os.environ, "VITRINE_CLIP_MODEL": f"hf-transformers:{tiny_checkpoints['clip']}"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"

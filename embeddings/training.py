"""Contrastive training of open_clip models: the demo model from scratch, or fine-tuning.

This and ``embeddings.model`` are the only modules that import torch/open_clip (training
needs them directly); both import them inside functions.

A training example is an image and the set of facts it shows (``{("colour", "red"),
("kind", "mug"), …}``); a caption is a text and the facts it states. A caption matches
every image whose facts include its own, so "red" is a positive for every red image in
the batch, not a false negative. With one distinct caption per image the targets are the
identity and the loss is exactly open_clip's ``ClipLoss`` (a test checks this).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from catalog.demo import (
    COLOUR_SYNONYMS,
    COLOURS,
    KIND_SYNONYMS,
    KINDS,
    PATTERN_NOUNS,
    PATTERNS,
    PLURALS,
    TRAINED_FILLERS_EN,
    TRAINED_FILLERS_ZH,
    TRAINED_MEASURES_ZH,
    TRAINED_PARAPHRASES_EN,
    TRAINED_PARAPHRASES_ZH,
    Attributes,
    all_attributes,
    demo_attribute_render,
)
from embeddings.model import MODEL_CONFIG_DIR

logger = logging.getLogger(__name__)

TRAINING_RENDER_SIZE = 96


@dataclass(frozen=True)
class Caption:
    text: str
    facts: frozenset
    language: str


@dataclass
class TrainingSet:
    images: np.ndarray  # uint8, N × 3 × H × W, already resized and cropped for the model
    facts: list[frozenset]
    caption_sampler: Callable[[int, random.Random], Caption]


@dataclass
class TrainingReport:
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)


def attribute_facts(attributes: Attributes) -> frozenset:
    return frozenset({("kind", attributes.kind), ("colour", attributes.colour), ("pattern", attributes.pattern)})


VARIED_SHARE = 0.5  # captions in a shopper's phrasing; the rest are the bare attributes


def demo_caption(attributes: Attributes, rng: random.Random, varied_share: float = VARIED_SHARE) -> Caption:
    """A bilingual caption stating some of the attributes (all, two, or one), half of them
    phrased as shoppers write (see the TRAINED_* templates)."""
    colour_en, colour_zh, _ = COLOURS[attributes.colour]
    pattern_en, pattern_zh = PATTERNS[attributes.pattern]
    kind_en, kind_zh, _, _ = KINDS[attributes.kind]
    language = "zh" if rng.random() < 0.5 else "en"
    roll = rng.random()
    if roll < 0.45:
        keys = ("colour", "pattern", "kind")
    elif roll < 0.62:
        keys = ("colour", "kind")
    elif roll < 0.72:
        keys = ("pattern", "kind")
    elif roll < 0.77:
        keys = ("colour", "pattern")
    else:
        keys = (rng.choice(("colour", "kind", "pattern")),)
    varied = rng.random() < varied_share
    if language == "zh":
        words = {"colour": colour_zh, "pattern": pattern_zh, "kind": kind_zh}
        text = "".join(words[k] for k in ("colour", "pattern", "kind") if k in keys)
        if varied:
            text = _varied_zh(attributes, keys, text, rng)
        elif len(keys) == 3 and rng.random() < 0.2:
            text = "一个" + text
    else:
        words = {"colour": colour_en, "pattern": pattern_en, "kind": kind_en}
        if varied:
            text = _varied_en(attributes, keys, rng)
        else:
            text = " ".join(words[k] for k in ("colour", "pattern", "kind") if k in keys)
            if len(keys) == 3 and rng.random() < 0.25:
                text = f"a photo of a {text}"
    values = {"colour": attributes.colour, "pattern": attributes.pattern, "kind": attributes.kind}
    return Caption(text=text, facts=frozenset((k, values[k]) for k in keys), language=language)


def _varied_en(attributes: Attributes, keys: tuple, rng: random.Random) -> str:
    colour = COLOURS[attributes.colour][0]
    if attributes.colour in COLOUR_SYNONYMS and rng.random() < 0.3:
        colour = rng.choice(COLOUR_SYNONYMS[attributes.colour])
    pattern = PATTERNS[attributes.pattern][0]
    kind = KINDS[attributes.kind][0]
    if attributes.kind in KIND_SYNONYMS and rng.random() < 0.3:
        kind = rng.choice(KIND_SYNONYMS[attributes.kind])
    if rng.random() < 0.35:
        kind = PLURALS.get(kind, kind + "s")
    words = {"colour": colour, "pattern": pattern, "kind": kind}
    text = " ".join(words[k] for k in ("colour", "pattern", "kind") if k in keys)
    roll = rng.random()
    if len(keys) == 3 and attributes.pattern != "plain" and roll < 0.25:
        text = rng.choice(TRAINED_PARAPHRASES_EN).format(k=kind, c=colour, pn=PATTERN_NOUNS[attributes.pattern])
    elif roll < 0.45:
        text = rng.choice(TRAINED_FILLERS_EN).format(text)
    if rng.random() < 0.25:
        text = caption_typo(text, rng)
    return text


def _varied_zh(attributes: Attributes, keys: tuple, text: str, rng: random.Random) -> str:
    colour, pattern, kind = COLOURS[attributes.colour][1], PATTERNS[attributes.pattern][1], KINDS[attributes.kind][1]
    roll = rng.random()
    if len(keys) == 3 and roll < 0.2:
        text = rng.choice(TRAINED_PARAPHRASES_ZH).format(c=colour, p=pattern, k=kind)
    elif keys == ("colour", "kind") and roll < 0.4:
        text = TRAINED_MEASURES_ZH[0].format(c=colour, k=kind)
    elif roll < 0.55:
        text = TRAINED_MEASURES_ZH[1].format(t=text)
    elif roll < 0.75:
        text = rng.choice(TRAINED_FILLERS_ZH).format(text)
    elif "kind" in keys and roll < 0.85:  # mixed: Chinese words, the English noun
        text = text.replace(kind, " " + KINDS[attributes.kind][0]).strip()
    if rng.random() < 0.25:
        text = _traditional(text)
    return text


def caption_typo(text: str, rng: random.Random) -> str:
    """One slip of the finger in a word of 4+ letters (never its first letter)."""
    words = text.split(" ")
    long = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not long:
        return text
    i = rng.choice(long)
    word = words[i]
    position = rng.randrange(1, len(word) - 1)
    operation = rng.choice(("drop", "swap", "double", "change"))
    if operation == "drop":
        word = word[:position] + word[position + 1 :]
    elif operation == "swap":
        word = word[:position] + word[position + 1] + word[position] + word[position + 2 :]
    elif operation == "double":
        word = word[:position] + word[position] + word[position:]
    else:
        word = word[:position] + rng.choice("aeiourstnl") + word[position + 1 :]
    words[i] = word
    return " ".join(words)


def _traditional(text: str) -> str:
    from opencc import OpenCC

    global _S2T
    if _S2T is None:
        _S2T = OpenCC("s2t")
    return _S2T.convert(text)


_S2T = None


def demo_training_split(held_out_fraction: float = 0.1, seed: int = 0) -> tuple[list[Attributes], list[Attributes]]:
    """(trained, held-out) attribute combinations: held-out combinations are never shown in
    training, to measure whether the model composes colour × pattern × kind."""
    combinations = all_attributes()
    rng = random.Random(f"split-{seed}")
    rng.shuffle(combinations)
    cut = int(len(combinations) * held_out_fraction)
    return combinations[cut:], combinations[:cut]


def demo_training_set(
    *,
    image_count: int,
    image_size: int,
    seed: int,
    workers: int = 2,
    progress: bool = True,
    varied_share: float = VARIED_SHARE,
) -> TrainingSet:
    """Renders from the "train" stream of the trained combinations, resized for the model."""
    trained, _ = demo_training_split(seed=0)
    rng = random.Random(f"training-set-{seed}")
    chosen = [rng.choice(trained) for _ in range(image_count)]
    jobs = [(attributes, index, image_size, seed) for index, attributes in enumerate(chosen)]
    images = _render_many(jobs, workers=workers, progress=progress)
    by_index = dict(enumerate(chosen))

    def sampler(index: int, sample_rng: random.Random) -> Caption:
        return demo_caption(by_index[index], sample_rng, varied_share)

    return TrainingSet(images=images, facts=[attribute_facts(a) for a in chosen], caption_sampler=sampler)


def _render_job(job) -> np.ndarray:
    attributes, index, image_size, seed = job
    # Drawn at 96 px, then scaled like a catalog photo: the model sees 64 px either way.
    image = demo_attribute_render(attributes, stream=f"train{seed}", index=index, size=TRAINING_RENDER_SIZE)
    return model_input_array(image, image_size)


def model_input_array(image: Image.Image, image_size: int) -> np.ndarray:
    """What the eval transform does before normalising: shortest side to size, centre crop."""
    width, height = image.size
    scale = image_size / min(width, height)
    resized = image.resize(
        (max(image_size, round(width * scale)), max(image_size, round(height * scale))), Image.BICUBIC
    )
    left = (resized.width - image_size) // 2
    top = (resized.height - image_size) // 2
    cropped = resized.crop((left, top, left + image_size, top + image_size))
    return np.asarray(cropped.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1).copy()


def _render_many(jobs: list, *, workers: int, progress: bool) -> np.ndarray:
    from tqdm import tqdm

    if workers > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(workers) as pool:
            arrays = list(
                tqdm(
                    pool.imap(_render_job, jobs, chunksize=64),
                    total=len(jobs),
                    desc="Rendering",
                    unit="img",
                    disable=not progress,
                )
            )
    else:
        arrays = [_render_job(job) for job in tqdm(jobs, desc="Rendering", unit="img", disable=not progress)]
    return np.stack(arrays)


def match_matrix(captions: Sequence[Caption], facts: Sequence[frozenset]) -> np.ndarray:
    """M[i, j] = 1 when caption i is true of image j."""
    return np.array([[1.0 if c.facts <= f else 0.0 for f in facts] for c in captions], dtype=np.float32)


def contrastive_loss(image_features, text_features, logit_scale, targets):
    """Symmetric cross-entropy with (possibly several) positives per row.

    Rows of ``targets`` are normalised, so with the identity this is CLIP's loss.
    """
    import torch.nn.functional as functional

    logits_per_image = logit_scale * image_features @ text_features.T
    image_targets = targets.T / targets.T.sum(dim=1, keepdim=True)
    text_targets = targets / targets.sum(dim=1, keepdim=True)
    image_loss = functional.cross_entropy(logits_per_image, image_targets)
    text_loss = functional.cross_entropy(logits_per_image.T, text_targets)
    return (image_loss + text_loss) / 2


@dataclass(frozen=True)
class TrainingConfig:
    steps: int = 2200
    batch_size: int = 128
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.05
    seed: int = 0


def model_create(model_name: str, pretrained: str | None, seed: int):
    """A trainable open_clip model with its config, normaliser and tokenizer.

    Weights are found the way the search encoder finds them (cache first, fail fast offline).
    """
    import open_clip
    import torch
    from django.conf import settings

    from embeddings.model import HF_TRANSFORMERS_PREFIX, ModelUnavailable, weights_plan

    if model_name.startswith(HF_TRANSFORMERS_PREFIX):
        raise ModelUnavailable(
            f"{model_name!r}: training and fine-tuning work on open_clip models only; a transformers "
            f"checkpoint is used as it is (fine-tune it with transformers' own tools, then point "
            f"VITRINE_CLIP_MODEL=hf-transformers:/folder at the saved folder)."
        )
    open_clip.add_model_config(MODEL_CONFIG_DIR)
    plan = weights_plan(
        open_clip, model_name=model_name, pretrained=pretrained or "", cache_dir=Path(settings.VITRINE_MODEL_CACHE_DIR)
    )
    torch.manual_seed(seed)
    model, _, preprocess = open_clip.create_model_and_transforms(
        plan.model_name, pretrained=plan.pretrained, **plan.preprocess_overrides
    )
    tokenizer = open_clip.get_tokenizer(plan.model_name)
    if plan.model_name.startswith("local-dir:"):
        folder = Path(plan.model_name.removeprefix("local-dir:"))
        config = json.loads((folder / "open_clip_config.json").read_text())["model_cfg"]
    else:
        config = open_clip.get_model_config(plan.model_name)
    normalise = next(t for t in preprocess.transforms if type(t).__name__ == "Normalize")
    return model, config, normalise, tokenizer


def train(
    *,
    model,
    normalise,
    tokenizer,
    data: TrainingSet,
    config: TrainingConfig,
    progress: bool = True,
    on_log: Callable[[int, float], None] | None = None,
) -> TrainingReport:
    import torch
    from tqdm import tqdm

    from embeddings.model import torch_threads_configure

    torch_threads_configure()
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    model.train()
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (no_decay if parameter.ndim < 2 or "logit_scale" in name or "embedding" in name else decay).append(parameter)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
    )

    def learning_rate(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress_fraction = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * progress_fraction))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate)
    mean = torch.tensor(normalise.mean).view(1, 3, 1, 1)
    std = torch.tensor(normalise.std).view(1, 3, 1, 1)
    report = TrainingReport(steps=config.steps, seconds=0.0)
    started = time.monotonic()
    count = len(data.images)
    bar = tqdm(range(config.steps), desc="Training", unit="step", disable=not progress)
    for step in bar:
        indices = [rng.randrange(count) for _ in range(config.batch_size)]
        captions = [data.caption_sampler(i, rng) for i in indices]
        targets = torch.from_numpy(match_matrix(captions, [data.facts[i] for i in indices]))
        pixels = torch.from_numpy(data.images[indices]).float().div_(255)
        if rng.random() < 0.5:
            pixels = pixels.flip(3)
        pixels = (pixels - mean) / std
        tokens = tokenizer([c.text for c in captions])
        image_features = torch.nn.functional.normalize(model.encode_image(pixels), dim=-1)
        text_features = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1)
        loss = contrastive_loss(image_features, text_features, model.logit_scale.exp(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        value = float(loss.detach())
        report.losses.append(value)
        if step % 20 == 0 or step == config.steps - 1:
            bar.set_postfix(loss=f"{value:.3f}")
            if on_log:
                on_log(step, value)
    report.seconds = time.monotonic() - started
    model.eval()
    return report


def checkpoint_save(*, model, model_config: dict, normalise, folder: Path, card: dict) -> Path:
    """Write an open_clip ``local-dir:`` folder: config, fp16 safetensors, model card."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().to("cpu").half().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    config = {
        "model_cfg": model_config,
        "preprocess_cfg": {"mean": list(normalise.mean), "std": list(normalise.std)},
    }
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (folder / "model_card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    return folder


def model_image_size(model) -> int:
    size = model.visual.image_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def catalog_training_set(*, image_size: int) -> TrainingSet:
    """The catalog's own photos, each paired with its product's texts (title, Chinese title,
    category, brand, attribute values). A text is true of every photo whose product has it."""
    from catalog.intake import ImageRejected, image_decode_rgb
    from catalog.models import ProductImage

    arrays, facts, texts_by_index = [], [], []
    for image in ProductImage.objects.select_related("product").order_by("pk"):
        try:
            with image.file.open("rb") as handle:
                picture = image_decode_rgb(content=handle.read())
        except (ImageRejected, OSError):
            continue  # its row already says why it cannot be used
        texts = product_texts(image.product)
        arrays.append(model_input_array(picture, image_size))
        facts.append(frozenset(("text", t) for t in texts))
        texts_by_index.append(sorted(texts))

    def sampler(index: int, sample_rng: random.Random) -> Caption:
        text = sample_rng.choice(texts_by_index[index])
        return Caption(text=text, facts=frozenset({("text", text)}), language="")

    images = np.stack(arrays) if arrays else np.zeros((0, 3, image_size, image_size), dtype=np.uint8)
    return TrainingSet(images=images, facts=facts, caption_sampler=sampler)


def product_texts(product) -> set[str]:
    texts = {product.title}
    attributes = product.attributes if isinstance(product.attributes, dict) else {}
    for key in ("title_zh",):
        if isinstance(attributes.get(key), str) and attributes[key]:
            texts.add(attributes[key])
    for value in (product.category, product.brand):
        if value:
            texts.add(value)
    for key, value in attributes.items():
        if isinstance(value, str) and value and key != "title_zh" and len(value) <= 40:
            texts.add(value)
    return {t for t in texts if t.strip()}


def encoders(model, normalise, tokenizer, image_size: int):
    """Encode functions over an in-memory model, the same way the search encoder does."""
    import torch

    mean = torch.tensor(normalise.mean).view(1, 3, 1, 1)
    std = torch.tensor(normalise.std).view(1, 3, 1, 1)

    def encode_images(pictures: list) -> np.ndarray:
        rows = []
        for start in range(0, len(pictures), 256):
            batch = np.stack([model_input_array(p, image_size) for p in pictures[start : start + 256]])
            pixels = (torch.from_numpy(batch).float() / 255 - mean) / std
            with torch.inference_mode():
                rows.append(torch.nn.functional.normalize(model.encode_image(pixels), dim=-1).numpy())
        return np.concatenate(rows)

    def encode_texts(texts: list[str]) -> np.ndarray:
        with torch.inference_mode():
            return torch.nn.functional.normalize(model.encode_text(tokenizer(texts)), dim=-1).numpy()

    return encode_images, encode_texts

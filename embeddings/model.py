"""The CLIP model: the only module that imports open_clip (and, with ``embeddings.hf_model``, torch).

Those imports happen inside functions, so importing this module (for the settings
description, say) stays cheap; a test proves the web import path never loads torch.

The model is loaded lazily, once per process, behind a lock (``get_encoder``), with
``reset_encoder`` for tests. Preprocessing is open_clip's own eval transform for the model.
Loading never hangs in download retries: weights already cached are loaded without the
network, and missing weights are only fetched after a quick check that the hub answers.

``VITRINE_CLIP_MODEL=hf-transformers:…`` loads a Hugging Face transformers checkpoint instead
(``embeddings.hf_model``), behind the same functions and with the same encoder interface.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import numpy as np
from django.conf import settings

from searchsite.errors import ServiceUnavailable

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

MODEL_CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
LOCAL_DIR_PREFIX = "local-dir:"
HF_HUB_PREFIX = "hf-hub:"
# transformers checkpoints (CLIP, Chinese-CLIP, SigLIP): a hub repo id or a local folder.
# ("hf-hub:" is open_clip's own scheme for open_clip checkpoints on the hub.)
HF_TRANSFORMERS_PREFIX = "hf-transformers:"
# A model with no pretrained weights is initialised from this seed so that every process
# (web, workers, tests) builds the same random model and their vectors are comparable.
RANDOM_INIT_SEED = 0
RANDOM_INIT_WEIGHTS = f"random-init-seed{RANDOM_INIT_SEED}"
# Texts per forward pass; text queries are short, so this is only about memory.
TEXT_BATCH_SIZE = 256

_OFFLINE_HINT = (
    "Set VITRINE_CLIP_MODEL / VITRINE_CLIP_PRETRAINED to weights this machine has: a checkpoint "
    "file path, or local-dir:/path/to/folder (open_clip_config.json + weights), or pre-fill the "
    "model cache (VITRINE_MODEL_CACHE_DIR) on a machine with network access. HF_HUB_OFFLINE=1 "
    "makes Vitrine use only the cache."
)


class ModelUnavailable(ServiceUnavailable):
    """The configured model or its weights cannot be loaded; the message says what to set."""


@dataclass(frozen=True)
class EmbeddingSpace:
    """What makes vectors comparable: the model, its exact weights and the dimension."""

    model: str
    weights: str
    dimension: int

    @property
    def id(self) -> str:
        return f"{self.model}|{self.weights}|{self.dimension}"

    @classmethod
    def from_id(cls, space_id: str) -> EmbeddingSpace:
        model, weights, dimension = space_id.rsplit("|", 2)
        return cls(model=model, weights=weights, dimension=int(dimension))


def configured_model_label() -> str:
    """A short description of the configured model for pages, without loading it."""
    model = settings.VITRINE_CLIP_MODEL
    pretrained = settings.VITRINE_CLIP_PRETRAINED
    if model.startswith(HF_TRANSFORMERS_PREFIX):  # a hub repo id as it is, a folder by its name
        source = model[len(HF_TRANSFORMERS_PREFIX) :]
        return Path(source).name if source.startswith(("/", ".", "~")) else source
    if pretrained.startswith(LOCAL_DIR_PREFIX):
        return Path(pretrained[len(LOCAL_DIR_PREFIX) :]).name
    if not pretrained and not model.startswith(HF_HUB_PREFIX):
        return f"{model} (untrained: random weights, results are not meaningful)"
    return f"{model} / {pretrained}" if pretrained else model


def torch_threads_configure() -> int:
    """Apply VITRINE_TORCH_THREADS (0: torch's own default, one per core) to this process;
    returns the number of threads torch uses. On a small, busy machine one thread per
    process is often faster than two that contend (measure: benchmarks/indexing_throughput.py)."""
    import torch

    threads = settings.VITRINE_TORCH_THREADS
    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def select_device(preference: str) -> str:
    import torch

    if preference == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise ModelUnavailable(f"VITRINE_DEVICE={preference!r} but no CUDA device is available.")
    return preference


class ClipEncoder:
    """A loaded open_clip model that turns images and texts into L2-normalised float32 rows."""

    def __init__(self, *, model, preprocess, tokenizer, device: str, space: EmbeddingSpace):
        self.model = model
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.device = device
        self.space = space

    def images_encode(self, images: list[Image.Image]) -> np.ndarray:
        return self.tensors_encode([self.preprocess(image) for image in images])

    def tensors_encode(self, tensors: list) -> np.ndarray:
        """Encode preprocessed images (``self.preprocess``'s tensors)."""
        import torch

        if not tensors:
            return np.zeros((0, self.space.dimension), dtype=np.float32)
        batch = torch.stack(tensors).to(self.device)
        with torch.inference_mode():
            features = self.model.encode_image(batch)
        return _normalised(features)

    @property
    def input_side(self) -> int:
        """The side of the square the model sees (224 for most CLIP models)."""
        size = getattr(getattr(self.model, "visual", None), "image_size", 224)
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    def texts_encode(self, texts: list[str]) -> np.ndarray:
        return texts_encode_batched(
            texts, self.space.dimension, lambda batch: self.model.encode_text(self.tokenizer(batch).to(self.device))
        )


def texts_encode_batched(texts: list[str], dimension: int, encode) -> np.ndarray:
    """``encode(a batch of texts) → features``, TEXT_BATCH_SIZE texts at a time, as
    L2-normalised float32 rows (both backends' text side)."""
    import torch

    rows = []
    for start in range(0, len(texts), TEXT_BATCH_SIZE):
        with torch.inference_mode():
            rows.append(_normalised(encode(texts[start : start + TEXT_BATCH_SIZE])))
    if not rows:
        return np.zeros((0, dimension), dtype=np.float32)
    return np.concatenate(rows)


def _normalised(features) -> np.ndarray:
    array = features.float().cpu().numpy().astype(np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.maximum(norms, 1e-12)


_encoders: dict[tuple[str, str], ClipEncoder] = {}
_encoder_lock = threading.Lock()


def get_encoder() -> ClipEncoder:
    """The configured model's encoder (VITRINE_CLIP_MODEL / VITRINE_CLIP_PRETRAINED), loaded
    on first use (raises ModelUnavailable). New images are embedded with it; searches use
    the live space's encoder (``embeddings.spaces.serving_encoder``), the same one except
    while a model change is being built."""
    return encoder_for(settings.VITRINE_CLIP_MODEL, settings.VITRINE_CLIP_PRETRAINED)


def encoder_for(model_name: str, pretrained: str) -> ClipEncoder:
    """The encoder of a model, loaded once per process."""
    key = (model_name, pretrained)
    encoder = _encoders.get(key)
    if encoder is None:
        with _encoder_lock:
            encoder = _encoders.get(key)
            if encoder is None:
                encoder = _encoders[key] = _load(
                    model_name=model_name,
                    pretrained=pretrained,
                    device_preference=settings.VITRINE_DEVICE,
                    cache_dir=Path(settings.VITRINE_MODEL_CACHE_DIR),
                )
    return encoder


def encoders_release(keep: set[str]) -> None:
    """Forget the loaded models whose space is not in ``keep`` (after a switch)."""
    with _encoder_lock:
        for key, encoder in list(_encoders.items()):
            if encoder.space.id not in keep:
                del _encoders[key]


def reset_encoder() -> None:
    """Forget the loaded models (tests change the model settings)."""
    with _encoder_lock:
        _encoders.clear()


def _load(*, model_name: str, pretrained: str, device_preference: str, cache_dir: Path) -> ClipEncoder:
    if model_name.startswith(HF_TRANSFORMERS_PREFIX):  # VITRINE_CLIP_PRETRAINED plays no part
        from embeddings.hf_model import hf_encoder_load

        return hf_encoder_load(
            model_name, device_preference=device_preference, cache_dir=cache_dir, fp16=settings.VITRINE_MODEL_FP16
        )
    started = time.monotonic()
    import open_clip
    import torch

    open_clip.add_model_config(MODEL_CONFIG_DIR)
    threads = torch_threads_configure()
    device = select_device(device_preference)
    plan = weights_plan(open_clip, model_name=model_name, pretrained=pretrained, cache_dir=cache_dir)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            model, _, preprocess = open_clip.create_model_and_transforms(
                plan.model_name,
                pretrained=plan.pretrained,
                device=device,
                cache_dir=str(cache_dir),
                **plan.preprocess_overrides,
            )
        tokenizer = open_clip.get_tokenizer(plan.model_name, cache_dir=str(cache_dir))
    except ModelUnavailable:
        raise
    except Exception as exc:
        raise ModelUnavailable(
            f"Could not load model {model_name!r} with weights {pretrained!r}: {exc}. {_OFFLINE_HINT}"
        ) from exc
    model.eval()
    dimension = int(model.text_projection.shape[1]) if _has_tensor(model, "text_projection") else None
    if dimension is None:
        dimension = int(model.encode_text(tokenizer(["probe"]).to(device)).shape[-1])
    space = EmbeddingSpace(model=plan.space_model, weights=plan.space_weights, dimension=dimension)
    logger.info(
        "Loaded CLIP model %s (weights %s, dimension %d) on %s (%d torch threads) in %.1f s",
        space.model,
        space.weights,
        space.dimension,
        device,
        threads,
        time.monotonic() - started,
    )
    return ClipEncoder(model=model, preprocess=preprocess, tokenizer=tokenizer, device=device, space=space)


def _has_tensor(model, name: str) -> bool:
    import torch

    value = getattr(model, name, None)
    return isinstance(value, torch.Tensor) and value.ndim == 2


@dataclass(frozen=True)
class _WeightsPlan:
    model_name: str
    pretrained: str | None
    space_model: str
    space_weights: str
    preprocess_overrides: dict


def weights_plan(open_clip, *, model_name: str, pretrained: str, cache_dir: Path) -> _WeightsPlan:
    """Decide where the weights come from, failing fast when they cannot be had."""
    if pretrained.startswith(LOCAL_DIR_PREFIX):
        folder = Path(pretrained[len(LOCAL_DIR_PREFIX) :]).expanduser().resolve()
        config_file = folder / "open_clip_config.json"
        if not config_file.is_file():
            raise ModelUnavailable(
                f"VITRINE_CLIP_PRETRAINED={pretrained!r}: {config_file} does not exist. {_OFFLINE_HINT}"
            )
        weights = _weights_fingerprint(_checkpoint_in(folder) or config_file)
        return _WeightsPlan(f"local-dir:{folder}", None, folder.name, f"local-dir:{weights}", {})

    if model_name.startswith(HF_HUB_PREFIX):
        repo_id = model_name[len(HF_HUB_PREFIX) :]
        snapshot = _hf_cached_snapshot(repo_id, cache_dir)
        if snapshot is not None:
            return _WeightsPlan(f"local-dir:{snapshot}", None, model_name, f"hf:{snapshot.name}", {})
        _require_network(_hf_endpoint(), what=f"VITRINE_CLIP_MODEL={model_name!r}")
        return _WeightsPlan(model_name, None, model_name, "hf:latest", {})

    if open_clip.get_model_config(model_name.replace("/", "-")) is None:
        raise ModelUnavailable(
            f"VITRINE_CLIP_MODEL={model_name!r} is not an open_clip model name. "
            f"Examples: ViT-B-32, vitrine-tiny, hf-hub:org/repo. Known names: open_clip.list_models()."
        )

    if not pretrained:
        return _WeightsPlan(model_name, None, model_name, RANDOM_INIT_WEIGHTS, {})

    path = Path(pretrained).expanduser()
    if path.is_file():
        return _WeightsPlan(model_name, str(path.resolve()), model_name, _weights_fingerprint(path), {})

    tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if not tag_cfg:
        raise ModelUnavailable(
            f"VITRINE_CLIP_PRETRAINED={pretrained!r} is neither a file nor a pretrained tag of "
            f"{model_name!r} (tags: {', '.join(open_clip.list_pretrained_tags_by_model(model_name)) or 'none'})."
        )
    overrides = {
        "image_mean": tag_cfg.get("mean"),
        "image_std": tag_cfg.get("std"),
        "image_interpolation": tag_cfg.get("interpolation"),
        "image_resize_mode": tag_cfg.get("resize_mode"),
    }
    overrides = {key: value for key, value in overrides.items() if value}
    cached = _tag_cached_file(tag_cfg, cache_dir)
    if cached is not None:
        # Load the cached file by path: open_clip would otherwise ask the hub first.
        return _WeightsPlan(model_name, str(cached), model_name, pretrained, overrides)
    host_url = _hf_endpoint() if tag_cfg.get("hf_hub") else tag_cfg.get("url", "")
    _require_network(host_url, what=f"VITRINE_CLIP_MODEL={model_name!r} VITRINE_CLIP_PRETRAINED={pretrained!r}")
    return _WeightsPlan(model_name, pretrained, model_name, pretrained, {})


def _checkpoint_in(folder: Path) -> Path | None:
    for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin", "model.safetensors"):
        if (folder / name).is_file():
            return folder / name
    return None


def _weights_fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return f"{path.name}@{digest.hexdigest()[:12]}"


def _hf_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def _is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _hf_cached_snapshot(repo_id: str, cache_dir: Path) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo_id, "open_clip_config.json", cache_dir=str(cache_dir))
    if not isinstance(config, str):
        return None
    snapshot = Path(config).parent
    return snapshot if _checkpoint_in(snapshot) else None


def _tag_cached_file(tag_cfg: dict, cache_dir: Path) -> Path | None:
    hub = tag_cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo_id, filename = os.path.split(hub)
        names = [filename] if filename else []
        names += ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        for name in names:
            found = try_to_load_from_cache(repo_id, name, cache_dir=str(cache_dir))
            if isinstance(found, str):
                return Path(found)
        return None
    url = tag_cfg.get("url", "")
    if url:
        candidate = cache_dir / os.path.basename(urlparse(url).path)
        return candidate if candidate.is_file() else None
    return None


def _require_network(url: str, *, what: str, hint: str = _OFFLINE_HINT) -> None:
    """Fail in seconds, naming the settings, when the weights would have to be downloaded."""
    if _is_offline():
        raise ModelUnavailable(
            f"{what}: the weights are not in the model cache ({settings.VITRINE_MODEL_CACHE_DIR}) "
            f"and HF_HUB_OFFLINE is set, so they cannot be downloaded. {hint}"
        )
    parsed = urlparse(url)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    timeout = settings.VITRINE_MODEL_DOWNLOAD_TIMEOUT
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ModelUnavailable(
            f"{what}: the weights are not in the model cache ({settings.VITRINE_MODEL_CACHE_DIR}) "
            f"and {host}:{port} cannot be reached within {timeout:g} s ({exc}). {hint}"
        ) from None

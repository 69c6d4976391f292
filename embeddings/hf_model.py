"""The Hugging Face ``transformers`` backend: ``VITRINE_CLIP_MODEL=hf-transformers:<repo id or folder>``.

It loads CLIP (``CLIPModel``), Chinese-CLIP (``ChineseCLIPModel``) and SigLIP / fixed-resolution
SigLIP 2 (``SiglipModel``) checkpoints with transformers' own model and processor classes, and
gives them the interface of the open_clip encoder (``embeddings.model.ClipEncoder``), so that
indexing, searches, the warm-up and the evaluation go through it unchanged.

The only module that imports transformers; it does so inside functions (a test proves the web
import path does not). Weights are read from a local folder or from the model cache
(VITRINE_MODEL_CACHE_DIR, the hub's cache layout); a hub id that is not cached is fetched only
after a quick check that the hub answers, and never with HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from embeddings.model import (
    HF_TRANSFORMERS_PREFIX,
    EmbeddingSpace,
    ModelUnavailable,
    _hf_endpoint,
    _normalised,
    _require_network,
    _weights_fingerprint,
    select_device,
    texts_encode_batched,
    torch_threads_configure,
)

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

# How each family's text is tokenised, as the model was trained. CLIP and Chinese-CLIP pool
# the end-of-text / [CLS] token, so padding to the longest text of a batch changes nothing.
# SigLIP pools the *last* position and was trained on texts padded to the full length
# (https://huggingface.co/docs/transformers/model_doc/siglip: 'padding="max_length"'), and
# SigLIP 2 on lowercased texts (https://huggingface.co/docs/transformers/model_doc/siglip2).
_TEXT_PADDING = {"clip": "longest", "chinese_clip": "longest", "siglip": "max_length"}
_LOWERCASED_TEXT = {"siglip"}
# Weights files as save_pretrained writes them (one file, or an index of shards).
_WEIGHTS_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
_HF_HINT = (
    "Set VITRINE_CLIP_MODEL=hf-transformers:/path/to/folder (a folder written by save_pretrained of the "
    "model and its processor; `manage.py make_hf_checkpoint` makes a tiny one), or pre-fill the model cache "
    "(VITRINE_MODEL_CACHE_DIR) on a machine with network access: `hf download REPO_ID --cache-dir DIR`. "
    "HF_HUB_OFFLINE=1 makes Vitrine use only the cache."
)


class HfClipEncoder:
    """A loaded transformers model that turns images and texts into L2-normalised float32 rows
    (``get_image_features`` / ``get_text_features``, as the model card calls them)."""

    def __init__(self, *, model, processor, model_type: str, device: str, dtype, space: EmbeddingSpace):
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.model_type = model_type
        self.device = device
        self.dtype = dtype
        self.space = space
        self._max_text_tokens = _max_text_tokens(model.config, processor.tokenizer)

    def preprocess(self, image: Image.Image):
        """One image as the model's processor prepares it (a C × H × W tensor). Called from the
        indexing's decode threads; the processor keeps no state between calls."""
        return self.processor.image_processor(images=image, return_tensors="pt")["pixel_values"][0]

    def images_encode(self, images: list[Image.Image]) -> np.ndarray:
        return self.tensors_encode([self.preprocess(image) for image in images])

    def tensors_encode(self, tensors: list) -> np.ndarray:
        """Encode preprocessed images (``self.preprocess``'s tensors)."""
        import torch

        if not tensors:
            return np.zeros((0, self.space.dimension), dtype=np.float32)
        batch = torch.stack(tensors).to(self.device, dtype=self.dtype)
        with torch.inference_mode():
            features = self.model.get_image_features(pixel_values=batch)
        return _normalised(_pooled(features))

    @property
    def input_side(self) -> int:
        """The side of the square the model sees."""
        size = self.model.config.vision_config.image_size
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    def texts_encode(self, texts: list[str]) -> np.ndarray:
        return texts_encode_batched(
            texts,
            self.space.dimension,
            lambda batch: _pooled(self.model.get_text_features(**self.tokens(batch).to(self.device))),
        )

    def tokens(self, texts: list[str]):
        """The model's inputs for these texts, tokenised the way the model was trained."""
        if self.model_type in _LOWERCASED_TEXT:
            texts = [text.lower() for text in texts]
        return self.processor(
            text=texts,
            padding=_TEXT_PADDING[self.model_type],
            truncation=True,
            max_length=self._max_text_tokens,
            return_tensors="pt",
        )


def _pooled(features):
    """transformers 5 returns the projected features as an output's ``pooler_output``; 4.x
    returned the tensor itself."""
    return getattr(features, "pooler_output", features)


def _max_text_tokens(config, tokenizer) -> int:
    positions = int(config.text_config.max_position_embeddings)
    limit = getattr(tokenizer, "model_max_length", positions) or positions
    return min(positions, int(limit))


@dataclass(frozen=True)
class _Checkpoint:
    folder: Path
    space_model: str
    space_weights: str


def hf_encoder_load(model_name: str, *, device_preference: str, cache_dir: Path, fp16: bool) -> HfClipEncoder:
    """Load ``hf-transformers:<repo id or folder>`` (raises ModelUnavailable naming the setting)."""
    started = time.monotonic()
    checkpoint = checkpoint_locate(model_name, cache_dir=cache_dir)
    import torch
    import transformers
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # "Loading weights" bars would fill the workers' logs
    threads = torch_threads_configure()
    device = select_device(device_preference)
    # Half precision on a GPU (about twice as fast, half the memory; vectors agree with float32
    # to ~1e-3); CPUs run float16 slowly or not at all.
    dtype = torch.float16 if fp16 and device.startswith("cuda") else torch.float32
    what = f"VITRINE_CLIP_MODEL={model_name!r}"
    try:
        config = transformers.AutoConfig.from_pretrained(checkpoint.folder, local_files_only=True)
    except Exception as exc:
        raise ModelUnavailable(
            f"{what}: {checkpoint.folder} holds no readable config.json ({exc}). {_HF_HINT}"
        ) from exc
    model_type = config.model_type
    if model_type == "siglip2":
        raise ModelUnavailable(
            f"{what} is a SigLIP 2 NaFlex checkpoint (Siglip2Model, variable resolution), which Vitrine does "
            f"not support: its images need patch masks and shapes. Use a fixed-resolution SigLIP 2 checkpoint "
            f"(e.g. google/siglip2-base-patch16-224), which transformers loads as SiglipModel."
        )
    if model_type not in _TEXT_PADDING:
        raise ModelUnavailable(
            f"{what} is a {model_type!r} model; the transformers backend loads CLIP, Chinese-CLIP and "
            f"SigLIP / SigLIP 2 (fixed resolution) checkpoints."
        )
    try:
        model = transformers.AutoModel.from_pretrained(checkpoint.folder, local_files_only=True, dtype=dtype)
        processor = transformers.AutoProcessor.from_pretrained(checkpoint.folder, local_files_only=True)
    except Exception as exc:
        raise ModelUnavailable(f"Could not load {what} from {checkpoint.folder}: {exc}. {_HF_HINT}") from exc
    model.to(device).eval()
    probe = HfClipEncoder(
        model=model,
        processor=processor,
        model_type=model_type,
        device=device,
        dtype=dtype,
        space=EmbeddingSpace(model=checkpoint.space_model, weights=checkpoint.space_weights, dimension=0),
    )
    dimension = int(probe.texts_encode(["probe"]).shape[1])
    space = EmbeddingSpace(model=checkpoint.space_model, weights=checkpoint.space_weights, dimension=dimension)
    logger.info(
        "Loaded %s model %s (weights %s, dimension %d) with transformers on %s in %s (%d torch threads) in %.1f s",
        type(model).__name__,
        space.model,
        space.weights,
        space.dimension,
        device,
        str(dtype).removeprefix("torch."),
        threads,
        time.monotonic() - started,
    )
    return HfClipEncoder(
        model=model, processor=processor, model_type=model_type, device=device, dtype=dtype, space=space
    )


def checkpoint_locate(model_name: str, *, cache_dir: Path) -> _Checkpoint:
    """Where the checkpoint's files are, and the space its weights make; fails fast when they
    are not on this machine and cannot be downloaded."""
    source = model_name[len(HF_TRANSFORMERS_PREFIX) :].strip()
    what = f"VITRINE_CLIP_MODEL={model_name!r}"
    path = Path(source).expanduser()
    if path.is_dir() or source.startswith(("/", ".", "~")):
        folder = path.resolve()
        if not (folder / "config.json").is_file():
            raise ModelUnavailable(
                f"{what}: {folder / 'config.json'} does not exist. A transformers checkpoint folder holds "
                f"config.json, the weights (model.safetensors) and the processor's files "
                f"(preprocessor/processor and tokenizer configs), as save_pretrained writes them. {_HF_HINT}"
            )
        weights = _weights_file(folder)
        if weights is None:
            raise ModelUnavailable(f"{what}: {folder} has no weights file ({', '.join(_WEIGHTS_FILES)}). {_HF_HINT}")
        return _Checkpoint(
            folder, f"{HF_TRANSFORMERS_PREFIX}{folder.name}", f"local-dir:{_weights_fingerprint(weights)}"
        )

    snapshot = _hub_cached_snapshot(source, cache_dir, what=what)
    if snapshot is None:
        _require_network(_hf_endpoint(), what=what, hint=_HF_HINT)
        snapshot = _hub_download(source, cache_dir, what=what)
    # The snapshot folder is named after the hub commit: the weights' revision.
    return _Checkpoint(snapshot, f"{HF_TRANSFORMERS_PREFIX}{source}", f"hf:{snapshot.name}")


def _weights_file(folder: Path) -> Path | None:
    return next((folder / name for name in _WEIGHTS_FILES if (folder / name).is_file()), None)


def _hub_cached_snapshot(repo_id: str, cache_dir: Path, *, what: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        config = try_to_load_from_cache(repo_id, "config.json", cache_dir=str(cache_dir))
    except HFValidationError as exc:
        raise ModelUnavailable(f"{what}: {repo_id!r} is neither a folder nor a hub repo id ({exc}).") from None
    if not isinstance(config, str):
        return None
    snapshot = Path(config).parent
    return snapshot if _weights_file(snapshot) else None


def _hub_download(repo_id: str, cache_dir: Path, *, what: str) -> Path:
    """Fetch the files transformers needs into the cache (not the TensorFlow/Flax weights)."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(
            snapshot_download(
                repo_id, cache_dir=str(cache_dir), allow_patterns=["*.json", "*.txt", "*.model", "*.safetensors"]
            )
        )
        if _weights_file(folder) is None:  # an older repo with PyTorch pickles only
            folder = Path(
                snapshot_download(
                    repo_id, cache_dir=str(cache_dir), allow_patterns=["pytorch_model.bin", "pytorch_model*.bin*"]
                )
            )
    except Exception as exc:
        raise ModelUnavailable(f"{what}: downloading {repo_id!r} failed: {exc}. {_HF_HINT}") from exc
    if _weights_file(folder) is None:
        raise ModelUnavailable(f"{what}: {repo_id!r} has no PyTorch weights ({', '.join(_WEIGHTS_FILES)}).")
    return folder

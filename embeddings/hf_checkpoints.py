"""Tiny transformers checkpoints made on this machine, without any download.

``manage.py make_hf_checkpoint --kind clip|chinese-clip|siglip|siglip2 OUT_DIR`` and the tests
use them to run the transformers backend (``embeddings.hf_model``) end to end offline. Each is
a random-initialised model of the real class (fixed seed; two layers, width 32, 32-px images)
with a processor of the real kind, saved with ``save_pretrained`` as the hub's checkpoints are,
so ``hf-transformers:OUT_DIR`` loads it through the same code as a published model. The
vectors are not meaningful; the tokenizers are made here from the demo catalog's words:

- CLIP: a byte-level BPE (vocab.json + merges) whose merges spell the demo's English words;
  other text (Chinese) falls back to bytes, as in the real CLIP vocabulary.
- Chinese-CLIP: a BERT WordPiece vocabulary with the demo's CJK characters and words.
- SigLIP: a SentencePiece unigram model trained here on the demo's texts (SiglipTokenizer).
- SigLIP 2 (fixed resolution, loaded as ``SiglipModel`` like google/siglip2-base-patch16-224):
  a Gemma-style BPE with byte fallback (GemmaTokenizer).
"""

from __future__ import annotations

import io
import string
from collections.abc import Iterator
from pathlib import Path

KINDS = ("clip", "chinese-clip", "siglip", "siglip2")
TINY_SEED = 0
# Small enough to build and encode in milliseconds, large enough to be a real transformer.
_WIDTH = 32
_LAYERS = 2
_HEADS = 2
_IMAGE_SIDE = 32
_PATCH = 8
_TEXT_POSITIONS = 32


def demo_texts() -> list[str]:
    """Every string of the demo catalog's vocabulary (titles' words, colours, kinds, in both languages)."""
    from catalog import demo

    def walk(value) -> Iterator[str]:
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for key, item in value.items():
                yield from walk(key)
                yield from walk(item)
        elif isinstance(value, (list, tuple, set, frozenset)):
            for item in value:
                yield from walk(item)

    texts = {text for name in dir(demo) if name.isupper() for text in walk(getattr(demo, name))}
    return sorted(texts)


def _ascii_words(texts: list[str]) -> list[str]:
    words = {word for text in texts for word in text.lower().split() if word.isascii() and word.isalpha()}
    return sorted(words)


def _cjk_characters(texts: list[str]) -> list[str]:
    return sorted({char for text in texts for char in text if not char.isascii() and char.isalpha()})


def _chained_merges(words: list[str], *, first: str = "", last: str = "") -> tuple[list[str], list[tuple[str, str]]]:
    """BPE merges that join each word's characters left to right (after a ``first`` symbol,
    with ``last`` glued to the final character): the new tokens and the merges, in order."""
    tokens: list[str] = []
    merges: list[tuple[str, str]] = []
    for word in words:
        parts = [first, *word] if first else list(word)
        parts[-1] += last
        while len(parts) > 1:
            merges.append((parts[0], parts[1]))
            parts = [parts[0] + parts[1], *parts[2:]]
            tokens.append(parts[0])
    return list(dict.fromkeys(tokens)), list(dict.fromkeys(merges))


def _clip_tokenizer(texts: list[str]):
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    alphabet = sorted(ByteLevel.alphabet())
    words, merges = _chained_merges(_ascii_words(texts), last="</w>")
    pieces = alphabet + [char + "</w>" for char in alphabet] + words + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {piece: number for number, piece in enumerate(dict.fromkeys(pieces))}
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=_TEXT_POSITIONS)


def _chinese_clip_tokenizer(texts: list[str], folder: Path):
    from transformers import BertTokenizer

    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces += list(string.ascii_lowercase + string.digits + string.punctuation)
    pieces += ["##" + char for char in string.ascii_lowercase + string.digits]
    pieces += _ascii_words(texts) + _cjk_characters(texts) + ["，", "。"]
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(dict.fromkeys(pieces)) + "\n", encoding="utf-8")
    return BertTokenizer(vocab=str(vocab_file), model_max_length=_TEXT_POSITIONS)


def _siglip_tokenizer(texts: list[str], folder: Path):
    import sentencepiece
    from transformers import SiglipTokenizer

    model = io.BytesIO()
    # The real SigLIP vocabulary's special ids: <pad> 0, </s> 1, <unk> 2, no <s>.
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter([text.lower() for text in texts]),
        model_writer=model,
        model_type="unigram",
        vocab_size=400,
        hard_vocab_limit=False,
        character_coverage=1.0,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    vocab_file = folder / "spiece.model"
    vocab_file.write_bytes(model.getvalue())
    return SiglipTokenizer(vocab_file=str(vocab_file), model_max_length=_TEXT_POSITIONS)


def _gemma_tokenizer(texts: list[str]):
    from transformers import GemmaTokenizer

    words, merges = _chained_merges(_ascii_words(texts), first="▁")
    pieces = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"] + [f"<0x{byte:02X}>" for byte in range(256)]
    pieces += ["▁", *string.ascii_lowercase, *string.digits] + words + _cjk_characters(texts)
    vocab = {piece: number for number, piece in enumerate(dict.fromkeys(pieces))}
    # SigLIP pools the last position: texts are padded on the right, as the real checkpoints do.
    return GemmaTokenizer(vocab=vocab, merges=merges, model_max_length=_TEXT_POSITIONS, padding_side="right")


def tiny_checkpoint_make(kind: str, folder: Path, *, seed: int = TINY_SEED) -> Path:
    """Write a tiny random-initialised checkpoint of ``kind`` (one of KINDS) into ``folder``."""
    import torch
    import transformers
    from transformers.utils import logging as transformers_logging

    if kind not in KINDS:
        raise ValueError(f"Unknown kind {kind!r}; one of {', '.join(KINDS)}.")
    transformers_logging.disable_progress_bar()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    texts = demo_texts()
    tower = {
        "hidden_size": _WIDTH,
        "intermediate_size": 2 * _WIDTH,
        "num_hidden_layers": _LAYERS,
        "num_attention_heads": _HEADS,
    }
    vision = {**tower, "image_size": _IMAGE_SIDE, "patch_size": _PATCH}
    square = {"height": _IMAGE_SIDE, "width": _IMAGE_SIDE}
    if kind == "clip":
        tokenizer = _clip_tokenizer(texts)
        text = {
            **tower,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": _TEXT_POSITIONS,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
        config = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=_WIDTH)
        model_class, processor = (
            transformers.CLIPModel,
            transformers.CLIPProcessor(
                image_processor=transformers.CLIPImageProcessor(size={"shortest_edge": _IMAGE_SIDE}, crop_size=square),
                tokenizer=tokenizer,
            ),
        )
    elif kind == "chinese-clip":
        tokenizer = _chinese_clip_tokenizer(texts, folder)
        text = {**tower, "vocab_size": len(tokenizer), "max_position_embeddings": _TEXT_POSITIONS}
        config = transformers.ChineseCLIPConfig(text_config=text, vision_config=vision, projection_dim=_WIDTH)
        model_class, processor = (
            transformers.ChineseCLIPModel,
            transformers.ChineseCLIPProcessor(
                image_processor=transformers.ChineseCLIPImageProcessor(size=square, crop_size=square),
                tokenizer=tokenizer,
            ),
        )
    else:
        tokenizer = _siglip_tokenizer(texts, folder) if kind == "siglip" else _gemma_tokenizer(texts)
        text = {
            **tower,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": _TEXT_POSITIONS,
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "bos_token_id": tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id,
        }
        config = transformers.SiglipConfig(text_config=text, vision_config=vision)
        model_class, processor = (
            transformers.SiglipModel,
            transformers.SiglipProcessor(
                image_processor=transformers.SiglipImageProcessor(size=square), tokenizer=tokenizer
            ),
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder

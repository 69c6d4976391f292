from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from embeddings.hf_checkpoints import KINDS, TINY_SEED, tiny_checkpoint_make


class Command(BaseCommand):
    help = (
        "Write a tiny random-initialised transformers checkpoint (CLIP, Chinese-CLIP, SigLIP or SigLIP 2) "
        "into a folder, without any download, for VITRINE_CLIP_MODEL=hf-transformers:FOLDER. Its vectors "
        "mean nothing: it is for trying the transformers backend offline."
    )

    def add_arguments(self, parser):
        parser.add_argument("output", type=Path, help="Checkpoint folder to write.")
        parser.add_argument("--kind", choices=KINDS, default="clip")
        parser.add_argument("--seed", type=int, default=TINY_SEED)

    def handle(self, *args, output: Path, kind: str, seed: int, **options):
        folder = tiny_checkpoint_make(kind, output, seed=seed).resolve()
        self.stdout.write(
            f"Wrote a tiny {kind} checkpoint to {folder}; use VITRINE_CLIP_MODEL=hf-transformers:{folder}"
        )

from __future__ import annotations

import random
import shlex
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from catalog.demo import all_attributes, demo_attribute_render
from embeddings import training
from embeddings.evaluation import AttributeProbe, attribute_accuracy


class Command(BaseCommand):
    help = (
        "Train an open_clip model contrastively: from scratch on the demo renderer (the demo model), or "
        "fine-tune any open_clip model on this catalog's photos and titles (--from-catalog). Writes a "
        "folder that VITRINE_CLIP_PRETRAINED=local-dir:FOLDER loads, with a model card."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output", type=Path, required=True, help="Checkpoint folder to write.")
        parser.add_argument("--model", default="vitrine-demo", help="open_clip model name (default vitrine-demo).")
        parser.add_argument("--pretrained", default="", help="Start from these weights (tag, file or local-dir:).")
        parser.add_argument(
            "--from-catalog",
            action="store_true",
            help="Train on the catalog's images paired with their titles and attributes.",
        )
        parser.add_argument("--images", type=int, default=24_000, help="Demo renders to train on (default 24000).")
        parser.add_argument("--steps", type=int, default=2200)
        parser.add_argument("--batch-size", type=int, default=128)
        parser.add_argument("--lr", type=float, default=1e-3)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--workers", type=int, default=2, help="Processes that render the demo images.")
        parser.add_argument(
            "--probe-renders",
            type=int,
            default=2,
            help="Held-out renders per attribute combination for the evaluation (0: none).",
        )

    def handle(
        self,
        *args,
        output: Path,
        model: str,
        pretrained: str,
        from_catalog: bool,
        images: int,
        steps: int,
        batch_size: int,
        lr: float,
        seed: int,
        workers: int,
        probe_renders: int,
        verbosity: int,
        **options,
    ):
        started = time.monotonic()
        show = verbosity > 0
        try:
            clip, model_config, normalise, tokenizer = training.model_create(model, pretrained, seed)
        except Exception as exc:  # noqa: BLE001 - open_clip raises many kinds; say which model failed
            raise CommandError(f"Could not create model {model!r} ({pretrained or 'random weights'}): {exc}") from None
        image_size = training.model_image_size(clip)
        if from_catalog:
            data = training.catalog_training_set(image_size=image_size)
            if len(data.images) < batch_size:
                raise CommandError(
                    f"The catalog has {len(data.images)} readable images; "
                    f"at least --batch-size ({batch_size}) are needed."
                )
        else:
            data = training.demo_training_set(
                image_count=images, image_size=image_size, seed=seed, workers=workers, progress=show
            )
        config = training.TrainingConfig(steps=steps, batch_size=batch_size, learning_rate=lr, seed=seed)
        loss_log: list[tuple[int, float]] = []
        report = training.train(
            model=clip,
            normalise=normalise,
            tokenizer=tokenizer,
            data=data,
            config=config,
            progress=show,
            on_log=lambda step, loss: loss_log.append((step, round(loss, 4))),
        )

        figures = {}
        if not from_catalog and probe_renders > 0:
            probe = demo_probe(probe_renders)
            encode_images, encode_texts = training.encoders(clip, normalise, tokenizer, image_size)
            figures = attribute_accuracy(encode_images, encode_texts, probe)
            _, held_out = training.demo_training_split(seed=0)
            held = [i for i, a in enumerate(probe.attributes) if a in set(held_out)]
            unseen = AttributeProbe(
                images=[probe.images[i] for i in held], attributes=[probe.attributes[i] for i in held]
            )
            figures.update(
                {
                    f"unseen_{k}": v
                    for k, v in attribute_accuracy(encode_images, encode_texts, unseen).items()
                    if k.startswith("compositional")
                }
            )
        card = {
            "command": reproducing_command(
                output=output,
                model=model,
                pretrained=pretrained,
                from_catalog=from_catalog,
                images=images,
                steps=steps,
                batch_size=batch_size,
                lr=lr,
                seed=seed,
            ),
            "model": model,
            "started_from": pretrained or "random weights",
            "data": "catalog images and titles" if from_catalog else f"demo renders ({len(data.images)}, seed {seed})",
            "steps": steps,
            "batch_size": batch_size,
            "learning_rate": lr,
            "seed": seed,
            "training_seconds": round(report.seconds, 1),
            "total_seconds": round(time.monotonic() - started, 1),
            "loss_first": loss_log[0][1] if loss_log else None,
            "loss_last": loss_log[-1][1] if loss_log else None,
            "evaluation": {k: round(v, 4) for k, v in figures.items()},
            "loss_log": loss_log,
        }
        training.checkpoint_save(model=clip, model_config=model_config, normalise=normalise, folder=output, card=card)
        self.stdout.write(
            f"Trained {steps} steps in {report.seconds:.0f} s; loss {card['loss_first']} → {card['loss_last']}."
        )
        for name, value in sorted(figures.items()):
            self.stdout.write(f"  {name:<28} {value:.3f}")
        self.stdout.write(f"Wrote {output} (use VITRINE_CLIP_PRETRAINED=local-dir:{output}).")


def reproducing_command(*, output: Path, from_catalog: bool, **values) -> str:
    """The command line that makes this checkpoint again, every option spelled out."""
    words = ["python", "manage.py", "train_clip", "--output", str(output)]
    if from_catalog:
        words.append("--from-catalog")
        values.pop("images")
    for name, value in values.items():
        if value != "":
            words += [f"--{name.replace('_', '-')}", str(value)]
    return shlex.join(words)


def demo_probe(renders_per_combination: int) -> AttributeProbe:
    """Held-out renders of every combination (a stream used nowhere else)."""
    pictures, labels = [], []
    for attributes in all_attributes():
        for index in range(renders_per_combination):
            pictures.append(demo_attribute_render(attributes, stream="probe", index=index))
            labels.append(attributes)
    order = list(range(len(pictures)))
    random.Random(0).shuffle(order)
    return AttributeProbe(images=[pictures[i] for i in order], attributes=[labels[i] for i in order])

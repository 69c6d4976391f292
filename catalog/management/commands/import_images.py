from __future__ import annotations

import re
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog import services, signals
from catalog.commands import held_images_index, intake_finish, intake_start, is_in_process
from catalog.intake import AcceptedImage, ImageRejected, image_accept
from catalog.models import ProductImage

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
# Files read, validated and written together: a few queries per batch instead of a dozen
# per file; small enough that a batch's files sit in memory comfortably.
READ_BATCH = 64


class Command(BaseCommand):
    help = (
        "Import a folder of images: one product per image, or one product per sub-folder with "
        "--group-by-folder. Prints every failure with its reason and exits non-zero if any failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path)
        parser.add_argument(
            "--group-by-folder",
            action="store_true",
            help="One product per sub-folder (its images become the product's photos).",
        )
        parser.add_argument("--category", default="", help="Category for the new products.")
        parser.add_argument("--brand", default="", help="Brand for the new products.")

    def handle(
        self, *args, directory: Path, group_by_folder: bool, category: str, brand: str, verbosity: int, **options
    ):
        directory = directory.expanduser().resolve()
        if not directory.is_dir():
            raise CommandError(f"{directory} is not a folder.")
        files = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise CommandError(f"No images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {directory}.")
        intake_start(self)

        # Only what was asked for: a re-import must not blank fields set elsewhere.
        given_fields = {name: value for name, value in (("category", category), ("brand", brand)) if value}
        failures: dict[str, str] = {}
        new_image_ids: list[int] = []
        products: set[int] = set()
        already_present = added = 0
        # Files go in batches (a few queries per batch, not a dozen per file); the new images
        # are embedded at the end, in full batches, with a progress bar.
        with signals.deferred() as held:
            with tqdm(total=len(files), desc="Reading", unit="img", disable=verbosity == 0) as bar:
                for start in range(0, len(files), READ_BATCH):
                    batch = files[start : start + READ_BATCH]
                    outcome = self._batch(directory, batch, group_by_folder, given_fields)
                    for relative, result in outcome:
                        if isinstance(result, str):
                            failures[relative] = result
                            continue
                        products.add(result.image.product_id)
                        if result.needs_indexing:
                            new_image_ids.append(result.image.pk)
                        if result.is_created:
                            added += 1
                        else:
                            already_present += 1
                    bar.update(len(batch))
            run = held_images_index(held, show_progress=verbosity > 0)
        intake_finish(self)

        paths_by_id = {}
        if run.failures:
            for image in ProductImage.objects.filter(pk__in=run.failures).select_related("product"):
                paths_by_id[image.pk] = f"{image.product.external_id} (image {image.pk})"
        for image_id, reason in run.failures.items():
            failures[paths_by_id.get(image_id, f"image {image_id}")] = reason

        self.stdout.write(
            f"{len(files)} files: {added} images added to {len(products)} products, "
            f"{already_present} already present, {len(failures)} failed."
        )
        if is_in_process():
            indexed = len(new_image_ids) - len(run.failures)
            self.stdout.write(
                f"Indexed {indexed} images in {run.seconds:.1f} s ({run.images_per_second:.1f} images/s)."
            )
        else:
            self.stdout.write(f"Queued {run.queued} images for the workers; their state shows in the admin.")
        for name, reason in sorted(failures.items()):
            self.stderr.write(f"FAILED {name}: {reason}")
        if failures:
            raise CommandError(f"{len(failures)} of {len(files)} images failed (listed above).")

    @staticmethod
    def _batch(
        directory: Path, paths: list[Path], group_by_folder: bool, given_fields: dict
    ) -> list[tuple[str, object]]:
        """Import some files: [(relative path, its ImageCreateResult or why it failed)]."""
        outcome: list[tuple[str, object]] = []
        read: list[tuple[str, str, AcceptedImage]] = []
        for path in paths:
            relative = path.relative_to(directory)
            key = relative.parent if group_by_folder and relative.parent != Path(".") else relative.with_suffix("")
            try:
                read.append((relative.as_posix(), key.as_posix(), image_accept(content=path.read_bytes())))
            except ImageRejected as exc:
                outcome.append((relative.as_posix(), exc.message))
            except OSError as exc:
                outcome.append((relative.as_posix(), f"The file could not be read ({exc.strerror or exc})."))
        # Products only for files whose image is good: a refused file leaves nothing behind.
        keys = list(dict.fromkeys(key for _, key, _ in read))
        written = services.products_bulk_upsert(
            products=[{"external_id": key, "title": _title(Path(key).name), **given_fields} for key in keys]
        )
        products = {}
        for key, result in zip(keys, written, strict=True):
            if isinstance(result, services.ProductWriteError):
                messages = [m for errors in (result.fields or {}).values() for m in errors] or [result.message]
                products[key] = "; ".join(messages)
            else:
                products[key] = result.product
        outcome += [(relative, products[key]) for relative, key, _ in read if isinstance(products[key], str)]
        good = [(relative, products[key], image) for relative, key, image in read if not isinstance(products[key], str)]
        results = services.images_create_many(items=[(product, image) for _, product, image in good])
        for (relative, _, _), result in zip(good, results, strict=True):
            outcome.append((relative, result.message if isinstance(result, ImageRejected) else result))
        return outcome


def _title(stem: str) -> str:
    words = re.sub(r"[_\-.]+", " ", stem).strip()
    return words[:1].upper() + words[1:] if words else stem

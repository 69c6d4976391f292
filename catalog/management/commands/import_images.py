from __future__ import annotations

import re
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from tqdm import tqdm

from catalog import services, signals
from catalog.commands import held_images_index, intake_finish, intake_start, is_in_process
from catalog.intake import ImageRejected
from catalog.models import ProductImage

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


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
        # The new images are embedded at the end, in full batches, with a progress bar.
        with signals.deferred() as held:
            for path in tqdm(files, desc="Reading", unit="img", disable=verbosity == 0):
                relative = path.relative_to(directory)
                key = relative.parent if group_by_folder and relative.parent != Path(".") else relative.with_suffix("")
                try:
                    content = path.read_bytes()
                    with transaction.atomic():
                        result = services.product_upsert(
                            external_id=key.as_posix(), title=_title(key.name), **given_fields
                        )
                        image = services.image_create(product=result.product, content=content)
                except ImageRejected as exc:
                    failures[relative.as_posix()] = exc.message
                    continue
                except ValidationError as exc:
                    failures[relative.as_posix()] = "; ".join(exc.messages)
                    continue
                except OSError as exc:
                    failures[relative.as_posix()] = f"The file could not be read ({exc.strerror or exc})."
                    continue
                products.add(result.product.pk)
                if image.needs_indexing:
                    new_image_ids.append(image.image.pk)
                if image.is_created:
                    added += 1
                else:
                    already_present += 1
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


def _title(stem: str) -> str:
    words = re.sub(r"[_\-.]+", " ", stem).strip()
    return words[:1].upper() + words[1:] if words else stem

from __future__ import annotations

from django.core.management.base import BaseCommand

from catalog import selectors, services, signals
from catalog.commands import held_images_index, is_in_process
from catalog.models import ProductImage
from embeddings.commands import index_claim_for_command, index_optimize
from embeddings.index import collection_name, get_index
from embeddings.management.commands.calibrate_relevance import describe_cutoffs
from embeddings.model import get_encoder
from embeddings.relevance import cutoffs_calibrate, cutoffs_get
from embeddings.spaces import space_switch_if_complete


def keywords_rebuild_now(space) -> None:
    """Drop the space's collection and mark its images for embedding (this command embeds them)."""
    get_index().drop(collection_name(space))
    get_index().ensure(space)
    ProductImage.objects.filter(embedding_space=space.id).update(state=ProductImage.State.PENDING, embedding_space="")


class Command(BaseCommand):
    help = (
        "Index every image that is not indexed with the current model: pending ones (for example "
        "after the broker was down) and all of them after a model change. The alias moves to the "
        "new collection once it holds every image."
    )

    def add_arguments(self, parser):
        parser.add_argument("--include-failed", action="store_true", help="Also retry images that failed.")
        parser.add_argument(
            "--with-keywords",
            action="store_true",
            help="The collection was made before keyword search: make it again with a keyword index and "
            "re-embed every image (searches find only what is re-embedded until it is done).",
        )

    def handle(self, *args, include_failed: bool, with_keywords: bool, verbosity: int, **options):
        index_claim_for_command()
        space = get_encoder().space
        if with_keywords:
            if get_index().has_keywords(space):
                self.stdout.write("The collection already has a keyword index.")
            else:
                keywords_rebuild_now(space)
        elif not get_index().has_keywords(space):
            self.stderr.write(
                "The collection was made before keyword search: searches read vectors alone. "
                "Run `manage.py reindex --with-keywords` to add it."
            )
        image_ids = selectors.images_needing_embedding(space.id)
        if include_failed:
            image_ids += list(ProductImage.objects.filter(state=ProductImage.State.FAILED).values_list("pk", flat=True))
        with signals.deferred() as held:
            services.images_reembed(image_ids=image_ids)
            run = held_images_index(held, show_progress=verbosity > 0)
        if is_in_process():
            index_optimize()
        if not is_in_process():
            self.stdout.write(f"Queued {run.queued} images for the workers (space {space.id}).")
            return
        remaining = len(selectors.images_needing_embedding(space.id))
        failed = ProductImage.objects.filter(state=ProductImage.State.FAILED).count()
        self.stdout.write(
            f"Indexed {run.queued - len(run.failures)} images in {run.seconds:.1f} s; "
            f"{len(run.failures)} failed, {failed} failed in all, {remaining} still to index."
        )
        if remaining == 0:
            space_switch_if_complete()  # after a model change (the last batch has usually done it)
            get_index().alias_point(space)
            self.stdout.write(f"Searches use {space.id}; the alias {get_index().alias} names its collection.")
            row = cutoffs_calibrate(space)
            if row is not None:
                self.stdout.write(describe_cutoffs(row, cutoffs_get(space)))

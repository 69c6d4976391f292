from django.core.management.base import BaseCommand, CommandError

from embeddings.index import IndexUnavailable
from embeddings.model import ModelUnavailable, get_encoder
from embeddings.relevance import MIN_PRODUCTS, cutoffs_calibrate, cutoffs_get


class Command(BaseCommand):
    help = (
        "Measure the catalog's score distributions and set the relevance cutoffs of the current "
        "embedding space (search also does this by itself when there are none)."
    )

    def handle(self, *args, **options):
        try:
            space = get_encoder().space
            row = cutoffs_calibrate(space)
            cutoffs = cutoffs_get(space)
        except (IndexUnavailable, ModelUnavailable) as exc:
            raise CommandError(str(exc)) from None
        if row is None:
            raise CommandError(f"Too few indexed products with titles to calibrate (need {MIN_PRODUCTS}).")
        self.stdout.write(describe_cutoffs(row, cutoffs))


def describe_cutoffs(row, cutoffs) -> str:
    def show(value):
        return "none" if value is None else f"{value:.4f}"

    text = row.stats.get("text", {})
    return (
        f"Relevance cutoffs for {row.embedding_space} ({row.sample_products} products sampled): "
        f"text {show(row.text_auto)} (matched titles: median {text.get('matched_p50', '-')}; "
        f"mismatched: 99th percentile {text.get('mismatched_p99', '-')}), photo {show(row.image_auto)}. "
        f"In force: text {show(cutoffs.text)}, photo {show(cutoffs.image)} ({cutoffs.source})."
    )

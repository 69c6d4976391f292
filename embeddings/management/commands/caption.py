"""Write alt text and descriptions with the vision model (VITRINE_CAPTION_API_URL), here and
now (not through the broker), as suggestions to review in the admin (or, with ``--accept``,
written at once).

    manage.py caption --missing                  # every photo without alt text, every product
                                                 # without a description (not those awaiting review)
    manage.py caption --products 12 14 --limit 50
"""

from collections import Counter

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog.models import Product
from embeddings.captions import caption_accept, images_caption, images_needing_captions
from embeddings.generative import GenerativeError, captions_enabled
from embeddings.models import CaptionSuggestion

# The reasons listed in the summary (the rest are counted).
REASONS_SHOWN = 10


class Command(BaseCommand):
    help = "Write alt text and descriptions for photos and products that have none (suggestions to review)."

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument(
            "--missing",
            action="store_true",
            help="every photo without alt text and product without a description, but those awaiting review "
            "or rejected",
        )
        which.add_argument(
            "--products",
            nargs="+",
            type=int,
            metavar="ID",
            help="these products' photos lacking text (a pending suggestion is written again)",
        )
        parser.add_argument("--limit", type=int, default=None, help="at most this many photos")
        parser.add_argument(
            "--accept",
            action="store_true",
            help="accept what is written at once (for shops that trust the model); otherwise review in the admin",
        )

    def handle(self, *args, missing: bool, products: list[int] | None, limit: int | None, accept: bool, **options):
        if not captions_enabled():
            raise CommandError(
                "The caption service is off: set VITRINE_CAPTION_API_URL (an OpenAI-compatible API with a vision "
                "model; see the README, 'Generated alt text and descriptions')."
            )
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1.")
        if products:
            unknown = sorted(set(products) - set(Product.objects.filter(pk__in=products).values_list("pk", flat=True)))
            if unknown:
                raise CommandError(f"No product with id {', '.join(map(str, unknown))}.")
        image_ids = images_needing_captions(product_ids=products, limit=limit, include_reviewed=bool(products))
        verbosity = options["verbosity"]
        if not image_ids:
            self.stdout.write("Nothing to caption: every photo has alt text and every product a description.")
            return
        outcomes = Counter()
        with tqdm(total=len(image_ids), desc="Captioning", unit="photo", disable=verbosity == 0) as bar:

            def progress(image_id: int, outcome: str) -> None:
                outcomes[outcome] += 1
                bar.update(1)
                bar.set_postfix(outcomes, refresh=False)

            try:
                # Here and now: a spent per-minute budget is waited for (the bar pauses).
                report = images_caption(image_ids=image_ids, progress=progress, wait_for_budget=True)
            except GenerativeError as exc:
                raise CommandError(exc.message) from None
        accepted = 0
        if accept and report.suggested:
            for suggestion in CaptionSuggestion.objects.filter(image_id__in=report.suggested).select_related("image"):
                accepted += caption_accept(suggestion)
        self._summary(report, accepted)
        if report.failed and not report.suggested:
            raise CommandError(f"Every caption failed ({len(report.failed)}); the reasons are above.")

    def _summary(self, report, accepted: int) -> None:
        self.stdout.write(
            f"{len(report.suggested)} suggested, {len(report.failed)} failed, {len(report.skipped)} skipped "
            "(nothing missing any more)."
        )
        if accepted:
            self.stdout.write(f"{accepted} accepted and written (--accept).")
        elif report.suggested:
            self.stdout.write("Review them in the admin: Embeddings › Caption suggestions.")
        reasons = Counter(report.failed.values())
        for reason, count in reasons.most_common(REASONS_SHOWN):
            self.stdout.write(f"  failed ×{count}: {reason}")
        if len(reasons) > REASONS_SHOWN:
            self.stdout.write(f"  … and {len(reasons) - REASONS_SHOWN} other reasons (see the admin).")

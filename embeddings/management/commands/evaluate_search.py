from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog.intake import ImageRejected, image_decode_rgb
from embeddings.commands import index_claim_for_command
from embeddings.evaluation import (
    JudgmentsError,
    judgments_load,
    metrics_summarise,
    shown_metrics,
    summary_chart,
    summary_table,
)
from embeddings.search import SearchQuery, catalog_search

RESULTS_PER_QUERY = 100  # the shown set's precision and recall are over this many at most


class Command(BaseCommand):
    help = (
        "Measure search quality: run judged queries (JSON Lines) through the search engine shoppers use "
        "(relevance cutoff included) and report R@1, R@5, R@10, MRR and nDCG@10 as shown, the shown set's "
        "precision and recall, and the share of out-of-domain queries showing nothing: overall, per "
        "language, per group and per split (trained / held-out phrasings)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--judgments", type=Path, required=True, help="The JSON Lines file of judged queries.")
        parser.add_argument(
            "--output",
            type=Path,
            default=None,
            help="Folder for results.json and results.png (default: beside the judgments).",
        )
        parser.add_argument(
            "--no-cutoff",
            action="store_true",
            help="Rank every product, as 'Show loosely related' does (default: the relevant ones, as shoppers see).",
        )

    def handle(self, *args, judgments: Path, output: Path | None, no_cutoff: bool, verbosity: int, **options):
        try:
            rows = judgments_load(judgments)
        except (JudgmentsError, OSError) as exc:
            raise CommandError(str(exc)) from None
        index_claim_for_command()
        output = output or judgments.parent
        output.mkdir(parents=True, exist_ok=True)
        results = []
        for judgment in tqdm(rows, desc="Queries", unit="query", disable=verbosity == 0):
            image = None
            if judgment.image is not None:
                try:
                    image = image_decode_rgb(content=judgment.image.read_bytes())
                except ImageRejected as exc:
                    raise CommandError(f"{judgment.image}: {exc.message}") from None
            query = SearchQuery(text=judgment.query, image=image, relevant_only=not no_cutoff, limit=RESULTS_PER_QUERY)
            result = catalog_search(query)
            shown = [hit.product.external_id for hit in result.hits]
            results.append((judgment, shown_metrics(shown, judgment.relevant, expect_none=judgment.expect_none)))
        summary = metrics_summarise(results)
        table = summary_table(summary)
        self.stdout.write(table)
        (output / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
        summary_chart(summary, output / "results.png", title=f"Search quality ({judgments.name})")
        self.stdout.write(f"Wrote {output / 'results.json'} and {output / 'results.png'}.")

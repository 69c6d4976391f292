from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog import signals
from catalog.commands import held_images_index, intake_finish, intake_start, is_in_process
from catalog.feeds.formats import FORMATS, FeedError, feed_format, feed_read
from catalog.feeds.importer import feed_import


class Command(BaseCommand):
    help = (
        "Import a product feed (CSV, TSV / Google Merchant Center text, JSON Lines, or Merchant "
        "Center RSS/XML) with image URLs. Running it again with the same feed changes nothing. "
        "Prints a summary, writes the failed rows to --report, exits non-zero if anything failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("feed", type=Path)
        parser.add_argument("--format", choices=FORMATS, help="Default: from the file name or its first bytes.")
        parser.add_argument("--report", type=Path, help="Write the rows that failed, with reasons, to this CSV file.")

    def handle(self, *args, feed: Path, format: str | None, report: Path | None, verbosity: int, **options):  # noqa: A002
        path = feed.expanduser()
        if not path.is_file():
            raise CommandError(f"{path} is not a file.")
        content = path.read_bytes()
        intake_start(self)
        try:
            rows = list(feed_read(content, format=format or feed_format(path.name, content)))
        except FeedError as exc:
            raise CommandError(exc.message) from None
        # The new images are embedded at the end, in full batches, with a progress bar.
        with signals.deferred() as held:
            with tqdm(total=len(rows), desc="Feed", unit="row", disable=verbosity == 0) as bar:
                result = feed_import(rows, on_row=lambda row: bar.update(1))
            run = held_images_index(held, show_progress=verbosity > 0)
        intake_finish(self)
        if report:
            report.write_text(result.csv(), encoding="utf-8")
        for line in result.lines:
            if line.status in ("failed", "image_failed"):
                self.stderr.write(f"row {line.row} ({line.external_id or 'no id'}): {line.status}: {line.detail}")
        embedded = f"{len(run.failures)} failed to embed" if is_in_process() else "queued for the workers"
        self.stdout.write(f"{result.summary()}; new images {embedded}.")
        if result.has_failures or run.failures:
            raise CommandError(
                f"{result.failed} rows and {result.image_failures} images failed"
                + (f"; the report is in {report}" if report else "; use --report FILE for a CSV of them")
            )

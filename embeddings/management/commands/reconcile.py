from django.core.management.base import BaseCommand, CommandError

from embeddings.commands import index_claim_for_command
from embeddings.index import IndexUnavailable
from embeddings.model import ModelUnavailable
from embeddings.reconcile import index_drift, reconcile


class Command(BaseCommand):
    help = (
        "Compare the database with the vector index and repair the difference: re-queue images "
        "missing from the index or indexed with another model, delete points whose image is gone."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Only report the drift.")

    def handle(self, *args, dry_run: bool, **options):
        index_claim_for_command()
        try:
            drift = index_drift()
            self.stdout.write(
                f"Index of {drift.space.id}: {drift.points} points; missing {len(drift.missing)}, "
                f"orphan points {len(drift.orphans)}, indexed with another model {len(drift.other_space)}, "
                f"pending {drift.pending}."
            )
            if drift.is_clean or dry_run:
                return
            report = reconcile(drift)
        except (IndexUnavailable, ModelUnavailable) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Re-queued {report.requeued} images; deleted {report.orphans_deleted} orphan points.")

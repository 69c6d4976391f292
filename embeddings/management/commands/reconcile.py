from django.core.management.base import BaseCommand, CommandError

from embeddings.commands import index_claim_for_command
from embeddings.index import IndexUnavailable
from embeddings.model import ModelUnavailable
from embeddings.reconcile import index_drift, reconcile
from embeddings.spaces import retired_spaces_drop


class Command(BaseCommand):
    help = (
        "Compare the database with the vector index and repair the difference: re-queue images "
        "missing from the index or indexed with another model, delete points whose image is gone."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Only report the drift.")
        parser.add_argument(
            "--drop-retired",
            action="store_true",
            help="Also delete the collections of models searches no longer use (kept after a model change).",
        )

    def handle(self, *args, dry_run: bool, drop_retired: bool, **options):
        index_claim_for_command()
        try:
            if drop_retired and not dry_run:
                for name in retired_spaces_drop():
                    self.stdout.write(f"Dropped the collection {name} (a model searches no longer use).")
            drift = index_drift()
            self.stdout.write(
                f"Index of {drift.space.id}: {drift.points} points; missing {len(drift.missing)}, "
                f"orphan points {len(drift.orphans)}, indexed with another model {len(drift.other_space)}, "
                f"pending {drift.pending} ({len(drift.stale_pending)} for too long)."
            )
            if drift.is_clean or dry_run:
                return
            report = reconcile(drift)
        except (IndexUnavailable, ModelUnavailable) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Re-queued {report.requeued} images; deleted {report.orphans_deleted} orphan points.")

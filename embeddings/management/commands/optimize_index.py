from django.core.management.base import BaseCommand, CommandError

from embeddings.commands import index_claim_for_command, index_optimize
from embeddings.index import IndexUnavailable, get_index
from embeddings.model import ModelUnavailable, get_encoder


class Command(BaseCommand):
    help = (
        "Build the HNSW graph of the current model's collection once it has outgrown an exact scan "
        "(VITRINE_INDEX_FULL_SCAN_KB). The embedded engine does it after imports; a Qdrant server by itself."
    )

    def handle(self, *args, **options):
        index_claim_for_command()
        try:
            built = index_optimize()
            count = get_index().count(get_encoder().space)
        except (IndexUnavailable, ModelUnavailable) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"{count} points: the HNSW graph was built." if built else f"{count} points: nothing to build."
        )

from django.core.management.base import BaseCommand, CommandError

from embeddings.commands import index_claim_for_command
from embeddings.index import IndexUnavailable
from embeddings.model import ModelUnavailable
from embeddings.tagging import tags_suggest


class Command(BaseCommand):
    help = "Score every product with indexed photos against the tag taxonomy and create suggestions to review."

    def handle(self, *args, **options):
        index_claim_for_command()
        try:
            report = tags_suggest()
        except (IndexUnavailable, ModelUnavailable) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{report.suggested} tags suggested for {report.products} products.")

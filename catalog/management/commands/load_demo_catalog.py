from django.core.management.base import BaseCommand
from django.db import transaction
from tqdm import tqdm

from catalog import services
from catalog.demo import demo_products
from catalog.models import ProductImage
from embeddings import sync
from embeddings.commands import images_embed_with_progress, index_claim_for_command


class Command(BaseCommand):
    help = "Create the demo shop (products drawn by Vitrine itself) and index it. Safe to run again."

    def add_arguments(self, parser):
        parser.add_argument("--products", type=int, default=48, help="How many products (default 48).")
        parser.add_argument("--seed", type=int, default=7, help="Random seed; the same seed gives the same shop.")

    def handle(self, *args, products: int, seed: int, verbosity: int, **options):
        index_claim_for_command()
        created_products = 0
        new_image_ids = []
        for spec in tqdm(
            demo_products(count=products, seed=seed), desc="Catalog", unit="product", disable=verbosity == 0
        ):
            with transaction.atomic():
                result = services.product_upsert(
                    external_id=spec.external_id,
                    title=spec.title,
                    description=spec.description,
                    brand=spec.brand,
                    category=spec.category,
                    price=spec.price,
                    currency="EUR",
                    attributes=spec.attributes.as_dict(),
                )
                sync.product_changed(result)
                created_products += result.is_created
                for position, content in enumerate(spec.images):
                    image = services.image_create(product=result.product, content=content, position=position)
                    new_image_ids += [image.image.pk] if image.needs_indexing else []
        # Also finish what an interrupted earlier run left pending.
        pending = list(ProductImage.objects.filter(state=ProductImage.State.PENDING).values_list("pk", flat=True))
        to_embed = sorted(set(new_image_ids) | set(pending))
        run = images_embed_with_progress(to_embed, show_progress=verbosity > 0)
        self.stdout.write(
            f"Demo catalog: {created_products} products created, {len(new_image_ids)} images added, "
            f"{run.queued} embedded, {len(run.failures)} failed."
        )

from django.apps import AppConfig


class EmbeddingsConfig(AppConfig):
    name = "embeddings"
    verbose_name = "Embeddings"

    def ready(self) -> None:
        # The index follows the catalog through the catalog's own signals.
        from embeddings import receivers

        receivers.connect()

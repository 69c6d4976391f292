from django.apps import AppConfig
from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.compatibility)
def check_visibility_timeout(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """A batch still running when the broker's visibility timeout ends is handed to a
    second worker: the timeout must outlast the batch's hard time limit."""
    from embeddings.tasks import BATCH_HARD_SECONDS

    if settings.CELERY_TASK_ALWAYS_EAGER:
        return []
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    if visibility > BATCH_HARD_SECONDS:
        return []
    return [
        checks.Warning(
            f"CELERY_BROKER_VISIBILITY_TIMEOUT={visibility} does not outlast an embedding batch's "
            f"time limit ({BATCH_HARD_SECONDS} s): a slow batch would run on two workers at once.",
            hint=f"Set it above {BATCH_HARD_SECONDS} (the default is 900).",
            id="vitrine.W001",
        )
    ]


class EmbeddingsConfig(AppConfig):
    name = "embeddings"
    verbose_name = "Embeddings"

    def ready(self) -> None:
        # The index follows the catalog through the catalog's own signals.
        from embeddings import receivers

        receivers.connect()

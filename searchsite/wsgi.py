import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "searchsite.settings")

application = get_wsgi_application()


def _start_warm_up() -> None:
    # Load the model, the tokenizers and torch's first pass while the server starts, so the
    # first search does not wait for them (readiness says "loading" meanwhile). Only those:
    # the embedded vector store is opened on first use, so a worker can hold it meanwhile.
    from django.conf import settings

    if settings.VITRINE_PRELOAD_MODEL:
        from embeddings import warmup

        warmup.start()


_start_warm_up()

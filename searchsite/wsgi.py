import gc
import os
import threading

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "searchsite.settings")

application = get_wsgi_application()


def _preload_model() -> None:
    # Load the model while the server starts, so the first search does not wait for it
    # (seconds for torch and open_clip alone). Only the model: the embedded vector store
    # is opened on first use, so a worker can hold it meanwhile.
    from embeddings.model import ModelUnavailable, get_encoder

    try:
        get_encoder()
    except ModelUnavailable:
        return  # searches will report it, with the reason
    # torch, open_clip and the model are ~400,000 objects that live as long as the
    # process: out of the garbage collector's sight, a full collection (every few thousand
    # requests) takes ~25 ms instead of ~300 ms, during which every thread of the worker waits.
    gc.freeze()


def _start_preload() -> None:
    from django.conf import settings

    if settings.VITRINE_PRELOAD_MODEL:
        threading.Thread(target=_preload_model, name="vitrine-model-preload", daemon=True).start()


_start_preload()

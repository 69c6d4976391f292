from django.http import HttpRequest

from embeddings.model import configured_model_label


def embedding_model(request: HttpRequest) -> dict:
    return {"embedding_model_label": configured_model_label()}

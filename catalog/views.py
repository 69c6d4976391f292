"""The shoppers' search page (minimal: text or photo, filters, a grid of results)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from catalog import selectors
from catalog.forms import SearchForm
from embeddings.index import IndexUnavailable
from embeddings.model import ModelUnavailable
from embeddings.search import SearchError, product_search

PAGE_SIZE = 24
# (query, language): shown on the empty page, in both languages the demo model knows.
EXAMPLE_QUERIES = (
    ("red striped mug", "en"),
    ("blue dotted bag", "en"),
    ("grey checked umbrella", "en"),
    ("红色条纹杯子", "zh"),
    ("蓝色圆点包", "zh"),
    ("黑色鞋", "zh"),
)


def search_page(request: HttpRequest) -> HttpResponse:
    params = request.POST if request.method == "POST" else request.GET
    form = SearchForm(
        params or None,
        request.FILES or None,
        categories=selectors.category_choices(),
        brands=selectors.brand_choices(),
    )
    context = {"form": form, "result": None, "error": None, "page_size": PAGE_SIZE, "examples": EXAMPLE_QUERIES}
    status = 200
    if form.is_bound and form.is_valid() and form.has_query:
        kwargs = form.search_kwargs(default_limit=PAGE_SIZE)
        try:
            context["result"] = product_search(**kwargs)
        except SearchError as exc:
            context["error"] = exc.message
            status = 404 if exc.code == "not_found" else 400
        except (IndexUnavailable, ModelUnavailable) as exc:
            context["error"] = f"Search is unavailable right now: {exc}"
            status = 503
        context["offset"] = kwargs["offset"]
        if context["result"] is not None:
            context["first_shown"] = kwargs["offset"] + 1
            context["last_shown"] = kwargs["offset"] + len(context["result"].hits)
        context["next_offset"] = kwargs["offset"] + kwargs["limit"]
        context["prev_offset"] = max(0, kwargs["offset"] - kwargs["limit"])
    elif form.is_bound and not form.is_valid():
        status = 400
    return render(request, "catalog/search.html", context, status=status)

"""``GET /suggest?q=<what has been typed>``: the search box's suggestions, as JSON.

    {"suggestions": [{"text": "red striped mug", "kind": "query"},
                     {"text": "Nordlys", "kind": "brand"}, ...]}

Popular past queries that shoppers clicked a result of come first (analytics.suggestions),
then the catalog's brands, categories and attribute values (embeddings.search.suggestions),
both in the shopper's language (the language cookie, else Accept-Language). One Latin
letter asks for nothing (it would match half the catalog); one Chinese character is a word.
Answers are cached briefly, per language and prefix: typing and deleting asks again.
"""

from __future__ import annotations

import hashlib
import re

from django.http import HttpRequest, JsonResponse
from django.utils import translation
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.views.decorators.http import require_GET

from analytics.suggestions import popular_queries
from catalog.translations import suffix_for
from embeddings.keywords import CJK
from embeddings.search.suggestions import vocabulary_suggestions
from searchsite.caching import cache_call

MAX_SUGGESTIONS = 8
# Past queries take at most this many places, so that the catalog's words are offered too.
MAX_QUERIES = 5
MIN_LATIN_CHARS = 2
MAX_PREFIX_CHARS = 100  # longer is not a prefix being typed
CACHE_SECONDS = 60
_HAS_CJK = re.compile(f"[{CJK}]")


def suggestions_for(prefix: str, language: str) -> list[dict[str, str]]:
    """The suggestions for ``prefix`` (as typed) in ``language`` (an interface language)."""
    typed = " ".join(prefix.split())
    if len(typed) > MAX_PREFIX_CHARS or not typed:
        return []
    if len(typed) < MIN_LATIN_CHARS and not _HAS_CJK.search(typed):
        return []
    key = "vitrine:suggest:" + hashlib.sha256(f"{language}\n{typed}".encode()).hexdigest()
    cached = cache_call("get", None, key)
    if cached is not None:
        return cached
    # One more than needed: the query typed so far may be among them, and is no suggestion.
    queries = popular_queries(typed.casefold(), language=language, limit=MAX_SUGGESTIONS + 1)
    words = vocabulary_suggestions(typed, suffix=suffix_for(language), limit=MAX_SUGGESTIONS)
    chosen: list[dict[str, str]] = []
    seen: set[str] = {typed.casefold()}  # what is typed already is no suggestion

    def offer(text: str, kind: str) -> None:
        if len(chosen) < MAX_SUGGESTIONS and text.casefold() not in seen:
            seen.add(text.casefold())
            chosen.append({"text": text, "kind": kind})

    for text in queries[:MAX_QUERIES]:
        offer(text, "query")
    for text, kind in words:
        offer(text, kind)
    for text in queries[MAX_QUERIES:]:  # room left: more past queries
        offer(text, "query")
    cache_call("set", None, key, chosen, CACHE_SECONDS)
    return chosen


@require_GET
def suggest(request: HttpRequest) -> JsonResponse:
    prefix = request.GET.get("q", "")
    response = JsonResponse({"suggestions": suggestions_for(prefix, translation.get_language() or "")})
    # The language comes from the language cookie, else Accept-Language: a browser keeps
    # the answer a minute, and asks again after the shopper switches language.
    patch_cache_control(response, private=True, max_age=CACHE_SECONDS)
    patch_vary_headers(response, ["Cookie", "Accept-Language"])
    return response

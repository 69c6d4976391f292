"""The shoppers' pages: search (text, photo, more like this, refinement, facets) and product.

Everything a search depends on is in the URL, so results can be shared, reloaded and
reached with the back button. A photo search is a POST that stores the photo and
redirects to ``?photo=<token>``. The page works without JavaScript; ``search.js`` adds
search-as-you-type, drag-and-drop and paste, and swaps the results in place (it asks for
the ``_results.html`` fragment with the ``X-Vitrine-Partial`` header).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from urllib.parse import quote_plus, urlencode, urlsplit

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods

from catalog.intake import ImageRejected, image_decode_rgb
from catalog.models import Product
from embeddings.index import IndexUnavailable
from embeddings.model import ModelUnavailable
from embeddings.search import SORTS, FacetFilters, SearchError, SearchQuery, catalog_search
from searchsite.caching import cache_call
from searchsite.errors import RETRY_AFTER_UNAVAILABLE
from searchsite.fetch import FetchRefused, url_fetch
from storefront.forms import PhotoSearchForm, ShopperSearchForm, facet_param
from storefront.query_photos import query_photo_load, query_photo_path, query_photo_store

logger = logging.getLogger(__name__)

PAGE_SIZE = 24
FACET_VALUES_SHOWN = 12  # per facet, the commonest first
SIMILAR_STRIP_SIZE = 8
PARTIAL_HEADER = "HTTP_X_VITRINE_PARTIAL"
# (query, language): shown on the empty page, in both languages the demo model knows.
EXAMPLE_QUERIES = (
    ("red striped mug", "en"),
    ("cups with blue dots", "en"),
    ("Nordlys lamp", "en"),
    ("红色条纹杯子", "zh"),
    ("我想要蓝色圆点包", "zh"),
    ("黑色的鞋", "zh"),
)
# Intake error code -> HTTP status for a photo that cannot be used.
PHOTO_ERROR_STATUS = {"file_too_large": 413, "unsupported_format": 415, "not_an_image": 415}


def search_page(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _photo_search(request)
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD, POST"})
    attributes = settings.VITRINE_FACET_ATTRIBUTES
    form = ShopperSearchForm(request.GET or None, sorts=SORTS, attributes=attributes)
    context = _base_context(request, form)
    status = 200
    if form.is_bound and not form.is_valid():
        status = 400
    elif form.is_bound and form.has_query:
        context["has_query"] = True
        status = _run_search(request, form, context)
    template = "storefront/_results.html" if request.META.get(PARTIAL_HEADER) else "storefront/search.html"
    response = render(request, template, context, status=status)
    # The same URL is a whole page or a fragment: caches (and Back) must keep them apart.
    patch_vary_headers(response, ["X-Vitrine-Partial"])
    if status == 503:
        response["Retry-After"] = RETRY_AFTER_UNAVAILABLE
    return response


def _base_context(request: HttpRequest, form: ShopperSearchForm) -> dict:
    return {
        "form": form,
        "photo_form": PhotoSearchForm(),
        "result": None,
        "has_query": False,
        "error": None,
        "unavailable": None,
        "examples": EXAMPLE_QUERIES,
        "sorts": SORTS,
        "photo_token": "",
        "query_words": request.GET.get("q", ""),
        # The text form keeps the photo, filters and sort when the words change; paging
        # and refinements belong to the old words and are dropped.
        "carry_params": _params_except(request.GET, {"q", "page", "plus", "minus", "similar", "loose", "exact"}),
        "price_carry_params": _params_except(request.GET, {"price_min", "price_max", "page"}),
    }


def _params_except(params: QueryDict, names: set[str]) -> list[tuple[str, str]]:
    return [(name, value) for name in params for value in params.getlist(name) if name not in names and value]


def _run_search(request: HttpRequest, form: ShopperSearchForm, context: dict) -> int:
    data = form.cleaned_data
    image = None
    if data.get("photo"):
        image = query_photo_load(data["photo"])
        if image is None:
            context["error"] = "This photo search has expired or the link is incomplete. Choose the photo again."
            context["photo_open"] = True
            return 404
        context["photo_token"] = data["photo"]
    page_number = data.get("page") or 1
    query = SearchQuery(
        text=data.get("q") or "",
        image=image,
        image_key=data.get("photo") or "",
        like_product_id=data.get("similar"),
        positive_ids=tuple(dict.fromkeys(data.get("plus") or ())),
        negative_ids=tuple(dict.fromkeys(data.get("minus") or ())),
        filters=FacetFilters(
            categories=tuple(data.get("category") or ()),
            brands=tuple(data.get("brand") or ()),
            price_min=data.get("price_min"),
            price_max=data.get("price_max"),
            attributes=form.attribute_filters(),
        ),
        relevant_only=not data.get("loose"),
        loose_limit=(data.get("loose") or 0) * settings.VITRINE_LOOSE_BAND,
        correct=not data.get("exact"),
        sort=data.get("sort") or "relevance",
        limit=PAGE_SIZE,
        offset=(page_number - 1) * PAGE_SIZE,
    )
    try:
        result = catalog_search(query)
    except SearchError as exc:
        context["error"] = exc.message
        return 404 if exc.code == "not_found" else 400
    except (IndexUnavailable, ModelUnavailable) as exc:
        logger.warning("Search unavailable: %s", exc)
        context["unavailable"] = str(exc)
        return 503
    context.update(_result_context(request, form, query, result, page_number))
    return 200


def _result_context(request, form, query: SearchQuery, result, page_number: int) -> dict:
    params = request.GET
    links = _Links(params)
    data = form.cleaned_data
    liked = set(query.positive_ids)
    # Each card's values read here, once: the card template has ~40 of them, and a lookup
    # through hit.product/hit.image costs the template several attempts each.
    product_url = _product_url_maker()
    cards = []
    for hit in result.hits:
        product, image = hit.product, hit.image
        pk = product.pk
        width, height = image.thumbnail_dimensions
        cards.append(
            {
                "liked": pk in liked,
                "url": product_url(pk),
                "thumbnail_url": image.thumbnail_url,
                "width": width,
                "height": height,
                "title": product.title,
                "brand": product.brand,
                "price": product.price,
                "currency": product.currency,
                "score": hit.score,
                "like_url": links.url(toggle=("plus", pk), drop_from=("minus", pk)),
                "not_url": links.url(toggle=("minus", pk), drop_from=("plus", pk)),
                "similar_url": f"?similar={pk}",
            }
        )
    page_count = max(1, math.ceil(result.total / PAGE_SIZE))
    facets = []
    for facet in result.facets:
        param = _facet_param(facet.name)
        facets.append(
            {
                "name": facet.name,
                "param": param,
                "label": facet.label,
                "values": [
                    {
                        "value": v.value,
                        "count": v.count,
                        "selected": v.selected,
                        "url": links.url(toggle=(param, v.value)),
                    }
                    # The page lists each facet's commonest values: links for those alone.
                    for v in facet.values[:FACET_VALUES_SHOWN]
                ],
            }
        )
    price_min, price_max = params.get("price_min", ""), params.get("price_max", "")
    price_buckets = []
    for bucket in result.price_buckets:
        high = _below(bucket.high)
        price_buckets.append(
            {
                "bucket": bucket,
                "url": links.url(set={"price_min": bucket.low, "price_max": high}),
                "selected": str(bucket.low or "") == price_min and str(high or "") == price_max,
            }
        )
    chips = _chips(params, links)
    refinements = query.positive_ids + query.negative_ids
    # Liked and hidden products in one query (none without refinements), in its order.
    referenced = list(Product.objects.filter(pk__in=refinements)) if refinements else []
    negative = set(query.negative_ids)
    return {
        "result": result,
        "cards": cards,
        "facets": facets,
        "price_buckets": price_buckets,
        "chips": chips,
        "similar_product": Product.objects.filter(pk=data.get("similar")).first() if data.get("similar") else None,
        "liked_products": [p for p in referenced if p.pk in liked],
        "hidden_products": [p for p in referenced if p.pk in negative],
        "unrefined_url": links.url(drop=("plus", "minus")),
        "loose_url": links.url(set={"loose": str((data.get("loose") or 0) + 1)}),
        "loose_band": min(settings.VITRINE_LOOSE_BAND, result.loosely_related),
        "exact_url": links.url(set={"exact": "1"}, drop=("page",)),
        "suggestion_urls": [("?" + urlencode({"q": word}), word) for word in result.suggestions],
        "strict_url": links.url(drop=("loose",)),
        "clear_filters_url": links.url(drop=("category", "brand", "price_min", "price_max", *_attribute_params())),
        "drop_photo_url": links.url(drop=("photo", "plus", "minus")),
        "page_number": page_number,
        "page_count": page_count,
        "first_shown": result.offset + 1,
        "last_shown": result.offset + len(result.hits),
        "prev_url": links.url(set={"page": page_number - 1 if page_number > 2 else None}) if page_number > 1 else None,
        "next_url": links.url(set={"page": page_number + 1}, keep_page=True) if page_number < page_count else None,
        "sort_options": [
            {
                "value": key,
                "label": label,
                "selected": key == result.sort,
                "url": links.url(set={"sort": None if key == "relevance" else key}),
            }
            for key, label in SORTS.items()
        ],
        "active_filter_count": len(chips),
        "first_page_url": links.url(),
    }


def _product_url_maker():
    """The product page's URL of a product id, reversed once per page (``reverse`` for each
    card cost more than the rest of the card)."""
    head, _, tail = reverse("product", args=[0]).rpartition("/0/")
    return lambda pk: f"{head}/{pk}/{tail}"


def _below(price):
    """Buckets are [low, high); the filter's maximum is inclusive, so stop a cent short."""
    return None if price is None else price - type(price)("0.01")


def _attribute_params() -> list[str]:
    return [facet_param(attribute) for attribute in settings.VITRINE_FACET_ATTRIBUTES]


def _facet_param(facet_name: str) -> str:
    return facet_param(facet_name.removeprefix("attr.")) if facet_name.startswith("attr.") else facet_name


def _chips(params: QueryDict, links: _Links) -> list[dict]:
    """The active filters, each with the link that removes it."""
    chips = []
    names = [("category", "Category"), ("brand", "Brand")]
    names += [(facet_param(a), a.replace("_", " ").capitalize()) for a in settings.VITRINE_FACET_ATTRIBUTES]
    for name, label in names:
        for value in dict.fromkeys(params.getlist(name)):
            chips.append({"label": f"{label}: {value}", "url": links.url(toggle=(name, value))})
    low, high = params.get("price_min", ""), params.get("price_max", "")
    if low or high:
        text = f"Price: {low or '0'} – {high}" if high else f"Price: from {low}"
        chips.append({"label": text, "url": links.url(drop=("price_min", "price_max"))})
    return chips


class _Links:
    """Links to the current page, changed as asked (:meth:`url`). A results page has
    about a hundred: the page's parameters are read once, each name=value pair is
    encoded once."""

    def __init__(self, params: QueryDict):
        self._lists = dict(params.lists())  # name → values; the lists are never changed
        self._encoded: dict[tuple[str, str], str] = {}

    def url(
        self,
        *,
        set: dict | None = None,  # noqa: A002 - reads naturally at the call sites
        toggle: tuple[str, object] | None = None,
        drop_from: tuple[str, object] | None = None,
        drop: tuple[str, ...] = (),
        keep_page: bool = False,
    ) -> str:
        """The current page's URL changed as asked. Any change but paging goes back to
        page 1, so a new filter never lands on a page past its last. (Parameters keep their
        order; one set anew goes last, as QueryDict does.)"""
        query = self._lists.copy()
        if not keep_page:
            query.pop("page", None)
        for name in drop:
            query.pop(name, None)
        for name, value in (set or {}).items():
            if value is None or value == "":
                query.pop(name, None)
            else:
                query[name] = [str(value)]
        if toggle:
            name, value = toggle
            value = str(value)
            values = query.get(name, [])
            query[name] = [v for v in values if v != value] if value in values else [*values, value]
        if drop_from:
            name, value = drop_from
            value = str(value)
            query[name] = [v for v in query.get(name, ()) if v != value]
        encoded = "&".join(self._pair(name, value) for name, values in query.items() for value in values)
        return f"?{encoded}" if encoded else "?"

    def _pair(self, name: str, value: str) -> str:
        pair = self._encoded.get((name, value))
        if pair is None:
            pair = self._encoded[name, value] = f"{quote_plus(name)}={quote_plus(value)}"
        return pair


def _photo_search(request: HttpRequest) -> HttpResponse:
    form = PhotoSearchForm(request.POST, request.FILES)
    status, message = 400, None
    wait = _photo_rate_wait(request)
    if wait:
        # Each photo search decodes a photo (or fetches one for up to 20 s): a client sending
        # many gets a pause, in plain words, before any of that work.
        form_empty = ShopperSearchForm(None, sorts=SORTS, attributes=settings.VITRINE_FACET_ATTRIBUTES)
        context = _base_context(request, form_empty)
        context.update(
            {
                "photo_form": PhotoSearchForm(),
                "error": f"Too many photo searches from here just now. Please try again in {wait} seconds.",
                "photo_open": True,
            }
        )
        response = render(request, "storefront/search.html", context, status=429)
        response["Retry-After"] = str(wait)
        return response
    if form.is_valid():
        try:
            image = _photo_from(form.cleaned_data)
        except ImageRejected as exc:
            status, message = PHOTO_ERROR_STATUS.get(exc.code, 400), exc.message
        except FetchRefused as exc:
            status, message = (413 if exc.code == "too_large" else 400), exc.message
        else:
            token = query_photo_store(image)
            words = request.POST.get("q", "").strip()[:500]
            params = {"photo": token, **({"q": words} if words else {})}
            return HttpResponseRedirect(f"{reverse('search')}?{urlencode(params)}", status=303)
    else:
        message = " ".join(str(e) for errors in form.errors.values() for e in errors)
    form_empty = ShopperSearchForm(None, sorts=SORTS, attributes=settings.VITRINE_FACET_ATTRIBUTES)
    context = _base_context(request, form_empty)
    context.update({"photo_form": form, "error": message, "photo_open": True})
    return render(request, "storefront/search.html", context, status=status)


def _photo_rate_wait(request: HttpRequest) -> int:
    """Seconds until this client may search by photo again (0: now), VITRINE_PHOTO_SEARCH_RATE
    per client address, counted in the cache (a hash of the address, for the window only;
    a cache that is down counts nothing)."""
    count, _, period = settings.VITRINE_PHOTO_SEARCH_RATE.partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]
    now = time.time()
    window = int(now // seconds)
    client = hashlib.sha256(f"{settings.SECRET_KEY}|{_client_address(request)}".encode()).hexdigest()[:32]
    key = f"vitrine:photo-rate:{client}:{window}"
    cache_call("add", False, key, 0, seconds + 1)
    used = cache_call("incr", None, key)
    if used is None or used <= int(count):
        return 0
    return max(1, int((window + 1) * seconds - now) + 1)


def _client_address(request: HttpRequest) -> str:
    """The shopper's address: behind the trusted proxy (VITRINE_PROXY_SSL_HEADER set), the
    one it appended to X-Forwarded-For (earlier entries are the client's to write)."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if settings.SECURE_PROXY_SSL_HEADER and forwarded:
        return forwarded.rsplit(",", 1)[-1].strip()
    return request.META.get("REMOTE_ADDR", "")


def _photo_from(data: dict):
    upload = data.get("image") or data.get("camera")
    if upload:
        limit = settings.VITRINE_MAX_IMAGE_BYTES
        if upload.size > limit:
            raise ImageRejected(
                "file_too_large",
                f"The file is {upload.size / 1048576:.1f} MB; the limit is {limit / 1048576:.1f} MB.",
            )
        return image_decode_rgb(content=upload.read())
    fetched = url_fetch(data["image_url"])
    return image_decode_rgb(content=fetched.content)


@require_GET
def query_photo(request: HttpRequest, token: str) -> HttpResponse:
    path = query_photo_path(token)
    if path is None:
        raise Http404("No such photo (it may have expired).")
    response = FileResponse(path.open("rb"), content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=86400"
    return response


@require_http_methods(["GET", "HEAD"])
def product_page(request: HttpRequest, pk: int) -> HttpResponse:
    product = get_object_or_404(Product, pk=pk, is_active=True)
    images = list(product.images.all())
    context = {
        "product": product,
        "images": images,
        "facts": _product_facts(product),
        "back_url": _search_referer(request),
        "similar": None,
        "similar_cards": [],
        "similar_error": None,
    }
    try:
        similar = catalog_search(
            SearchQuery(like_product_id=product.pk, relevant_only=False, limit=SIMILAR_STRIP_SIZE, facets=False)
        )
    except SearchError as exc:
        context["similar_error"] = (
            "Similar products appear once this product's photos are indexed."
            if exc.code == "not_indexed"
            else exc.message
        )
    except (IndexUnavailable, ModelUnavailable) as exc:
        logger.warning("Similar products unavailable: %s", exc)
        context["similar_error"] = "Similar products cannot be shown right now: search is unavailable."
    else:
        context["similar"] = similar
        product_url = _product_url_maker()
        context["similar_cards"] = [
            {
                "url": product_url(hit.product.pk),
                "thumbnail_url": hit.image.thumbnail_url,
                "dimensions": hit.image.thumbnail_dimensions,
                "title": hit.product.title,
                "price": hit.product.price,
                "currency": hit.product.currency,
            }
            for hit in similar.hits
        ]
    return render(request, "storefront/product.html", context)


def _product_facts(product: Product) -> list[tuple[str, str]]:
    facts = [("Category", product.category)] if product.category else []
    for key, value in (product.attributes or {}).items():
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        if isinstance(value, (str, int, float)) and str(value):
            facts.append((str(key).replace("_", " ").capitalize(), str(value)))
    facts.append(("Product id", product.external_id))
    return facts


def _search_referer(request: HttpRequest) -> str:
    """Back to the search the shopper came from (same site only), else the search page."""
    referer = request.META.get("HTTP_REFERER", "")
    home = reverse("search")
    if referer and url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()}):
        parts = urlsplit(referer)
        if parts.path == home:
            return f"{home}?{parts.query}" if parts.query else home
    return home

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
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    QueryDict,
)
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import get_language, gettext_lazy, ngettext
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from analytics.models import SearchEvent
from analytics.recorder import search_record
from analytics.services import EventRefused, event_record
from catalog.intake import ImageRejected, image_decode_rgb
from catalog.models import Product
from catalog.thumbnails import thumbnail_dimensions, thumbnail_srcset, thumbnail_url
from catalog.translations import localized, localized_alt, localized_attributes, suffix_for
from embeddings.generative import GenerativeError, imagine_enabled
from embeddings.imagine import imagine_photo, imagine_prompt_clean
from embeddings.index import IndexUnavailable
from embeddings.model import ModelUnavailable
from embeddings.query_photos import query_photo_load, query_photo_path, query_photo_store
from embeddings.search import SORTS, FacetFilters, SearchError, SearchQuery, catalog_search
from embeddings.search.understanding import vocabulary
from searchsite.caching import cache_call
from searchsite.errors import RETRY_AFTER_UNAVAILABLE
from searchsite.fetch import FetchRefused, url_fetch
from storefront.forms import PhotoSearchForm, ShopperSearchForm, crop_text, facet_param
from storefront.imagine import ImagineFailure, imagine_failure, imagine_paced

logger = logging.getLogger(__name__)

PAGE_SIZE = 24
EAGER_CARDS = 4  # a desktop's first row; a phone's first two rows
FACET_VALUES_SHOWN = 12  # per facet, the commonest first
SIMILAR_STRIP_SIZE = 8
GALLERY_THUMBNAIL_SIZE = 160  # the product page's photo buttons: 72 px, sharp on a 2x screen
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
# What a shopper reads when a photo cannot be used, per intake / fetch error code: plain
# words in their language. The operator's details (settings, addresses, errno) go to the log.
PHOTO_ERRORS = {
    "file_too_large": gettext_lazy(
        "This photo is too large. Choose a smaller one, or take a screenshot of the part you want."
    ),
    "too_large": gettext_lazy("The image at that address is too large. Choose a smaller one."),
    "too_many_pixels": gettext_lazy("This photo has too many pixels to search with. Choose a smaller one."),
    "unsupported_format": gettext_lazy("This kind of image cannot be searched. Use a JPEG, PNG, WebP or GIF photo."),
    "not_an_image": gettext_lazy("This file is not a photo. Choose a JPEG, PNG, WebP or GIF image."),
    "damaged_image": gettext_lazy("This photo seems damaged and cannot be read. Try another one."),
    "empty_file": gettext_lazy("This file is empty. Choose a photo."),
    "empty_response": gettext_lazy("Nothing came back from that address. Check the address of the image."),
    "bad_url": gettext_lazy("That is not the address of an image. Copy the image's address (it starts with https://)."),
    "bad_scheme": gettext_lazy("Only web addresses (https:// or http://) can be used."),
    "private_address": gettext_lazy("Images can only be fetched from public websites."),
    "dns_failed": gettext_lazy("That website could not be found. Check the address of the image."),
    "connection_failed": gettext_lazy(
        "That website could not be reached. Try again later, or download the photo and choose it."
    ),
    "timeout": gettext_lazy(
        "That website took too long to answer. Try again later, or download the photo and choose it."
    ),
    "http_error": gettext_lazy(
        "That website did not give us the image. Check the address, or download the photo and choose it."
    ),
    "too_many_redirects": gettext_lazy(
        "That address sends us elsewhere too many times. Download the photo and choose it."
    ),
}
PHOTO_ERROR_DEFAULT = gettext_lazy("This photo cannot be used. Try another one.")
# A part of a search link that cannot be used is left out, and the shopper told in words.
PARAM_NOTICES = {
    "page": gettext_lazy("That page does not exist, so the first page is shown."),
    "photo": gettext_lazy("This photo search link is incomplete, so the photo was left out. Choose the photo again."),
    "crop": gettext_lazy("The part of the photo to search could not be read, so the whole photo is searched."),
    "price_min": gettext_lazy("The price range could not be read, so it was left out."),
    "price_max": gettext_lazy("The price range could not be read, so it was left out."),
    "similar": gettext_lazy("That product could not be found, so it was left out."),
    "plus": gettext_lazy("Some liked products could not be used, so they were left out."),
    "minus": gettext_lazy("Some hidden products could not be used, so they were left out."),
    "sort": gettext_lazy("That sort order is unknown, so results are sorted by relevance."),
    "loose": gettext_lazy("Part of this link could not be used, so it was left out."),
    "q": gettext_lazy("The words were too long, so they were left out."),
}
PARAM_NOTICE_DEFAULT = gettext_lazy("Part of this link could not be used, so it was left out.")
# Facet and fact labels of the attributes shops commonly send (others are shown as named).
ATTRIBUTE_LABELS = {
    "category": gettext_lazy("Category"),
    "brand": gettext_lazy("Brand"),
    "kind": gettext_lazy("Kind"),
    "colour": gettext_lazy("Colour"),
    "color": gettext_lazy("Colour"),
    "pattern": gettext_lazy("Pattern"),
    "material": gettext_lazy("Material"),
    "size": gettext_lazy("Size"),
    "style": gettext_lazy("Style"),
    "tags": gettext_lazy("Tags"),
}
SORT_LABELS = {
    "relevance": gettext_lazy("Best match"),
    "price": gettext_lazy("Price: low to high"),
    "-price": gettext_lazy("Price: high to low"),
    "newest": gettext_lazy("Newest"),
}


def search_page(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _imagine_search(request) if "imagine" in request.POST else _photo_search(request)
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD, POST"})
    attributes = settings.VITRINE_FACET_ATTRIBUTES
    params = request.GET
    form = ShopperSearchForm(params or None, sorts=SORTS, attributes=attributes)
    notices = []
    if form.is_bound and not form.is_valid():
        params, form, notices = _form_repaired(params, form, attributes)
    context = _base_context(request, form, params)
    context["notices"] = notices
    status = 200
    if form.is_bound and form.has_query:
        context["has_query"] = True
        status = _run_search(request, form, context, params)
    template = "storefront/_results.html" if request.META.get(PARTIAL_HEADER) else "storefront/search.html"
    response = render(request, template, context, status=status)
    response.shopper_page = True  # its 404s say what happened (ShopperNotFoundMiddleware)
    # The same URL is a whole page or a fragment: caches (and Back) must keep them apart.
    patch_vary_headers(response, ["X-Vitrine-Partial"])
    if status == 503:
        response["Retry-After"] = RETRY_AFTER_UNAVAILABLE
    return response


def _form_repaired(params: QueryDict, form: ShopperSearchForm, attributes) -> tuple[QueryDict, ShopperSearchForm, list]:
    """A link with parts that cannot be used (a page past the end, a cut photo token, an
    unreadable price…) still shows a usable page: those parts are left out, and the
    shopper is told in words, never with the form's field names."""
    repaired = params.copy()
    notices: list[str] = []
    for name in form.errors:
        if name == "__all__":  # "more like this" with words or a photo: the words win
            names = ["similar"]
        elif name in ("price_min", "price_max"):
            names = ["price_min", "price_max"]
        else:
            names = [name]
        for dropped in names:
            repaired.pop(dropped, None)
        notice = str(PARAM_NOTICES.get(names[0], PARAM_NOTICE_DEFAULT))
        if notice not in notices:
            notices.append(notice)
    form = ShopperSearchForm(repaired or None, sorts=SORTS, attributes=attributes)
    if form.is_bound and not form.is_valid():  # never expected: start afresh rather than fail
        repaired = QueryDict()
        form = ShopperSearchForm(None, sorts=SORTS, attributes=attributes)
    return repaired, form, notices


def _base_context(request: HttpRequest, form: ShopperSearchForm, params: QueryDict | None = None) -> dict:
    params = request.GET if params is None else params
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
        "query_words": params.get("q", ""),
        # The text form keeps the photo, filters and sort when the words change; paging
        # and refinements belong to the old words and are dropped.
        "carry_params": _params_except(params, {"q", "page", "plus", "minus", "similar", "loose", "exact"}),
        "price_carry_params": _params_except(params, {"price_min", "price_max", "page"}),
        "max_photo_bytes": settings.VITRINE_MAX_IMAGE_BYTES,
        "max_photo_mb": f"{settings.VITRINE_MAX_IMAGE_BYTES / 1048576:.0f}",
        "imagine_enabled": imagine_enabled(),
        "imagine_max_chars": settings.VITRINE_IMAGINE_MAX_CHARS,
    }


def _params_except(params: QueryDict, names: set[str]) -> list[tuple[str, str]]:
    return [(name, value) for name in params for value in params.getlist(name) if name not in names and value]


def _run_search(request: HttpRequest, form: ShopperSearchForm, context: dict, params: QueryDict) -> int:
    data = form.cleaned_data
    image = None
    image_key = data.get("photo") or ""
    if data.get("photo"):
        image = query_photo_load(data["photo"])
        if image is None:
            context["error"] = _("This photo search has expired. Choose the photo again.")
            context["photo_open"] = True
            return 404
        context["photo_token"] = data["photo"]
        context["photo_size"] = image.size
        context["imagined"] = data.get("imagined") or ""
        if data.get("crop"):
            x, y, w, h = data["crop"]
            width, height = image.size
            box = (round(x * width), round(y * height), round((x + w) * width), round((y + h) * height))
            image = image.crop(box)
            image_key = f"{image_key}:{crop_text(data['crop'])}"
            context["crop"] = crop_text(data["crop"])
    page_number = data.get("page") or 1
    query = SearchQuery(
        text=data.get("q") or "",
        image=image,
        image_key=image_key,
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
        logger.info("Search refused (%s): %s", exc.code, exc.message)
        context["error"] = _search_error_text(exc)
        return 404 if exc.code == "not_found" else 400
    except (IndexUnavailable, ModelUnavailable) as exc:
        logger.warning("Search unavailable: %s", exc)  # the details are for the operator
        context["unavailable"] = True
        return 503
    # Each search the shopper is shown (typing, paging and filtering included; HEAD is no
    # shopper). Its id goes on the result links, for clicks (static/vitrine/analytics.js).
    if request.method == "GET":
        context["search_id"] = search_record(
            page=result,
            query=query.text,
            language=get_language() or "",
            source="page",
            imagined=context.get("imagined", ""),
        )
    context.update(_result_context(request, form, query, result, page_number, params))
    return 200


def _search_error_text(exc: SearchError) -> str:
    if exc.code == "not_found":
        return _("That product is no longer in the shop.")
    if exc.code == "not_indexed":
        return _("This product's photos are still being prepared, so similar products cannot be shown yet.")
    return _("This search could not be done. Try other words or a photo.")


def _result_context(request, form, query: SearchQuery, result, page_number: int, params: QueryDict) -> dict:
    links = _Links(params)
    suffix = suffix_for()
    vocab = vocabulary() if suffix else None
    data = form.cleaned_data
    liked = set(query.positive_ids)
    # Each card's values read here, once: the card template has ~40 of them, and a lookup
    # through hit.product/hit.image costs the template several attempts each.
    product_url = _product_url_maker()
    like_label = _("Like %(title)s: show more like it")
    not_label = _("Not this: hide %(title)s and show fewer like it")
    cards = []
    for number, hit in enumerate(result.hits):
        product, image = hit.product, hit.image
        pk = product.pk
        width, height = image.thumbnail_dimensions
        cards.append(
            {
                "pk": pk,
                "position": result.offset + number + 1,  # 1-based across pages, for click analytics
                "liked": pk in liked,
                "url": product_url(pk),
                "thumbnail_url": image.thumbnail_url,
                # Empty when the photo has no alt text: the card's title names the link.
                "alt": localized_alt(image),
                "width": width,
                "height": height,
                "title": (title := localized(product, "title") if suffix else product.title),
                "like_label": like_label % {"title": title},
                "not_label": not_label % {"title": title},
                # The first row is what the shopper sees first (the page's largest paint):
                # loaded at once, the first with high priority; the rest lazily.
                "eager": number < EAGER_CARDS,
                "first": number == 0,
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
                "label": ATTRIBUTE_LABELS.get(facet.name.removeprefix("attr."), facet.label),
                "values": [
                    {
                        "value": v.value,
                        "label": vocab.label(facet.name, v.value, suffix) if vocab else v.value,
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
    low, high = data.get("price_min"), data.get("price_max")
    if low is not None and high is not None and str(low) == price_max:  # typed the wrong way round
        price_min, price_max = price_max, price_min
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
    chips = _chips(params, links, data, vocab, suffix)
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
        "similar_product": _similar_product(data.get("similar")),
        "liked_titles": [localized(p, "title") for p in referenced if p.pk in liked],
        "hidden_titles": [localized(p, "title") for p in referenced if p.pk in negative],
        "unrefined_url": links.url(drop=("plus", "minus")),
        "loose_url": links.url(set={"loose": str((data.get("loose") or 0) + 1)}),
        "loose_band": min(settings.VITRINE_LOOSE_BAND, result.loosely_related),
        "exact_url": links.url(set={"exact": "1"}, drop=("page",)),
        "suggestion_urls": [("?" + urlencode({"q": word}), word) for word in result.suggestions],
        "strict_url": links.url(drop=("loose",)),
        "clear_filters_url": links.url(drop=("category", "brand", "price_min", "price_max", *_attribute_params())),
        "drop_photo_url": links.url(drop=("photo", "imagined", "crop", "plus", "minus")),
        "page_number": page_number,
        "page_count": page_count,
        "first_shown": result.offset + 1,
        "last_shown": result.offset + len(result.hits),
        "prev_url": links.url(set={"page": page_number - 1 if page_number > 2 else None}) if page_number > 1 else None,
        "next_url": links.url(set={"page": page_number + 1}, keep_page=True) if page_number < page_count else None,
        "sort_options": [
            {
                "value": key,
                "label": SORT_LABELS.get(key, label),
                "selected": key == result.sort,
                "url": links.url(set={"sort": None if key == "relevance" else key}),
            }
            for key, label in SORTS.items()
        ],
        "active_filter_count": len(chips),
        "first_page_url": links.url(),
        "price_min_value": low,
        "price_max_value": high,
        "status_text": _status_text(result, data, page_number, page_count),
        "results_word": _("results"),
        "show_results_label": ngettext("Show %(count)s result", "Show %(count)s results", result.total)
        % {"count": f"{result.total}{'+' if result.total_is_capped else ''}"}
        if result.total
        else _("Show the results"),
        "loose_text": ngettext(
            "%(count)s more loosely related product hidden.",
            "%(count)s more loosely related products hidden.",
            result.loosely_related,
        )
        % {"count": f"{result.loosely_related}{'+' if result.total_is_capped else ''}"},
        "loose_link_text": (
            _("Show %(count)s more loosely related") if data.get("loose") else _("Show %(count)s loosely related")
        )
        % {"count": min(settings.VITRINE_LOOSE_BAND, result.loosely_related)},
        "show_scores": request.user.is_staff,
        "labels": {
            "more": _("More like this"),
            "like": _("Like"),
            "liked": _("Liked"),
            "not": _("Not this"),
            "match": _("match"),
            "score_title": _("How close this is to the search (cosine similarity); shown to staff only"),
        },
        "crop_url": links.url(drop=("crop",)),
    }


def _status_text(result, data: dict, page_number: int, page_count: int) -> str:
    if not result.total:
        return _("No results")
    count = f"{result.total}{'+' if result.total_is_capped else ''}"
    if data.get("loose"):
        text = ngettext("%(count)s result", "%(count)s results", result.total) % {"count": count}
    else:
        text = ngettext("%(count)s relevant result", "%(count)s relevant results", result.total) % {"count": count}
    if page_count > 1:
        text += " · " + _("page %(page)s of %(pages)s") % {"page": page_number, "pages": page_count}
    return text


def _similar_product(pk) -> dict | None:
    product = Product.objects.filter(pk=pk).first() if pk else None
    return {"pk": product.pk, "title": localized(product, "title")} if product else None


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


def _chips(params: QueryDict, links: _Links, data: dict, vocab, suffix) -> list[dict]:
    """The active filters, each with the link that removes it."""
    chips = []
    names = [("category", "category", "Category"), ("brand", "brand", "Brand")]
    names += [
        (facet_param(a), f"attr.{a}", a.replace("_", " ").capitalize()) for a in settings.VITRINE_FACET_ATTRIBUTES
    ]
    for name, facet, label in names:
        label = ATTRIBUTE_LABELS.get(facet.removeprefix("attr."), label)
        for value in dict.fromkeys(params.getlist(name)):
            shown = vocab.label(facet, value, suffix) if vocab else value
            chips.append({"label": f"{label}: {shown}", "url": links.url(toggle=(name, value))})
    low, high = data.get("price_min"), data.get("price_max")
    if low is not None or high is not None:
        if high is None:
            text = _("Price: from %(low)s") % {"low": low}
        else:
            text = _("Price: %(low)s – %(high)s") % {"low": low if low is not None else 0, "high": high}
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


def _imagine_search(request: HttpRequest) -> HttpResponse:
    """Imagine it: the description is drawn (or the picture drawn for the same words
    lately is reused) and searched with like a photo: a redirect to ``?photo=<token>`` with
    the words (``imagined``) for the page to say what the picture was drawn for."""
    if not imagine_enabled():
        raise Http404("There is no “Imagine it” here.")  # off: invisible, as if never built
    prompt = request.POST.get("imagine", "")
    if not imagine_prompt_clean(prompt):  # said at once, not counted against the rate
        return _imagine_failed(request, imagine_failure(GenerativeError("empty_prompt", "")), prompt)
    wait = _client_rate_wait(request, settings.VITRINE_IMAGINE_RATE, "imagine")
    if wait:
        return _imagine_failed(request, imagine_paced(wait), prompt)
    try:
        imagined = imagine_photo(prompt)
    except GenerativeError as exc:
        logger.log(
            logging.INFO if exc.code in ("empty_prompt", "budget_exhausted") else logging.WARNING,
            "Imagine it failed (%s): %s",
            exc.code,
            exc.message,
        )
        return _imagine_failed(request, imagine_failure(exc), prompt)
    words = request.POST.get("q", "").strip()[:500]
    params = {"photo": imagined.token, "imagined": imagined.prompt, **({"q": words} if words else {})}
    return HttpResponseRedirect(f"{reverse('search')}?{urlencode(params)}", status=303)


def _imagine_failed(request: HttpRequest, failure: ImagineFailure, prompt: str) -> HttpResponse:
    form_empty = ShopperSearchForm(None, sorts=SORTS, attributes=settings.VITRINE_FACET_ATTRIBUTES)
    context = _base_context(request, form_empty)
    context.update({"error": failure.message, "imagine_open": True, "imagine_prompt": prompt[:1000]})
    response = render(request, "storefront/search.html", context, status=failure.status)
    if failure.retry_after:
        response["Retry-After"] = str(failure.retry_after)
    return response


def _photo_search(request: HttpRequest) -> HttpResponse:
    form = PhotoSearchForm(request.POST, request.FILES)
    status, message = 400, None
    wait = _client_rate_wait(request, settings.VITRINE_PHOTO_SEARCH_RATE, "photo")
    if wait:
        # Each photo search decodes a photo (or fetches one for up to 20 s): a client sending
        # many gets a pause, in plain words, before any of that work.
        form_empty = ShopperSearchForm(None, sorts=SORTS, attributes=settings.VITRINE_FACET_ATTRIBUTES)
        context = _base_context(request, form_empty)
        context.update(
            {
                "photo_form": PhotoSearchForm(),
                "error": ngettext(
                    "Too many photo searches from here just now. Please try again in %(seconds)d second.",
                    "Too many photo searches from here just now. Please try again in %(seconds)d seconds.",
                    wait,
                )
                % {"seconds": wait},
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
            logger.info("Photo search refused (%s): %s", exc.code, exc.message)
            status, message = (
                PHOTO_ERROR_STATUS.get(exc.code, 400),
                str(PHOTO_ERRORS.get(exc.code, PHOTO_ERROR_DEFAULT)),
            )
        except FetchRefused as exc:
            logger.info("Photo address refused (%s): %s", exc.code, exc.message)
            status = 413 if exc.code == "too_large" else 400
            message = str(PHOTO_ERRORS.get(exc.code, PHOTO_ERROR_DEFAULT))
        else:
            token = query_photo_store(image)
            words = request.POST.get("q", "").strip()[:500]
            crop = crop_text(form.cleaned_data.get("crop"))
            params = {"photo": token, **({"q": words} if words else {}), **({"crop": crop} if crop else {})}
            return HttpResponseRedirect(f"{reverse('search')}?{urlencode(params)}", status=303)
    else:
        message = " ".join(_photo_form_error(name, e) for name, errors in form.errors.items() for e in errors)
    form_empty = ShopperSearchForm(None, sorts=SORTS, attributes=settings.VITRINE_FACET_ATTRIBUTES)
    context = _base_context(request, form_empty)
    context.update({"photo_form": form, "error": message, "photo_open": True})
    return render(request, "storefront/search.html", context, status=status)


def _photo_form_error(name: str, error: str) -> str:
    if name == "image_url":
        return str(PHOTO_ERRORS["bad_url"])
    if name == "crop":
        return str(PARAM_NOTICES["crop"])
    if name in ("image", "camera"):
        return str(PHOTO_ERRORS["empty_file"]) if "empty" in error else str(PHOTO_ERROR_DEFAULT)
    return error  # the form's own messages (no photo, several photos) are shoppers' words


def _client_rate_wait(request: HttpRequest, rate: str, name: str) -> int:
    """Seconds until this client may do ``name`` again (0: now), ``rate`` ("30/minute") per
    client address, counted in the cache (a hash of the address, for the window only; a
    cache that is down counts nothing)."""
    count, _, period = rate.partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]
    now = time.time()
    window = int(now // seconds)
    client = hashlib.sha256(f"{settings.SECRET_KEY}|{_client_address(request)}".encode()).hexdigest()[:32]
    key = f"vitrine:{name}-rate:{client}:{window}"
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
                f"The file is {upload.size / 1048576:.1f} MB; "
                f"the limit is {limit / 1048576:.1f} MB (VITRINE_MAX_IMAGE_BYTES).",
            )
        return image_decode_rgb(content=upload.read())
    fetched = url_fetch(data["image_url"])
    return image_decode_rgb(content=fetched.content)


# A click report is three short fields; anything much longer is not one.
CLICK_BODY_MAX_BYTES = 512


# CSRF-exempt on purpose: navigator.sendBeacon (static/vitrine/analytics.js) cannot send the
# CSRF header, and the report must survive the page being left. A forged request can do no
# more than append a click to a search whose random 96-bit id it must already know, for an
# existing product, at most MAX_EVENTS_PER_SEARCH times per search (analytics.services); it
# changes nothing a shopper sees and carries no session or cookie.
@csrf_exempt
@require_POST
def click_event(request: HttpRequest) -> HttpResponse:
    """A shopper clicked a result: ``search`` (the page's search id), ``product`` (its id),
    ``position`` (1-based across pages). 204, or the API's error shape with a 4xx."""
    if int(request.META.get("CONTENT_LENGTH") or 0) > CLICK_BODY_MAX_BYTES:
        return _event_error(413, "request_too_large", f"A click report is at most {CLICK_BODY_MAX_BYTES} bytes.")
    fields = {}
    for name in ("product", "position"):
        value = request.POST.get(name, "")
        if not value.isdigit():
            return _event_error(400, "invalid", f"{name} must be a whole number.", name)
        fields[name] = int(value)
    try:
        event_record(
            search_id=request.POST.get("search", "")[:64],
            event_type=SearchEvent.Type.CLICK,
            product_id=fields["product"],
            position=fields["position"],
        )
    except EventRefused as refused:
        return _event_error(refused.status, refused.code, refused.message, refused.field)
    return HttpResponse(status=204)


def _event_error(status: int, code: str, message: str, field: str | None = None) -> JsonResponse:
    error = {"code": code, "message": message, **({"fields": {field: [message]}} if field else {})}
    return JsonResponse({"error": error}, status=status)


@require_GET
def query_photo(request: HttpRequest, token: str) -> HttpResponse:
    path = query_photo_path(token)
    if path is None:
        raise Http404("No such photo (it may have expired).")  # shoppers see templates/404.html
    response = FileResponse(path.open("rb"), content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=86400"
    return response


@require_http_methods(["GET", "HEAD"])
def product_page(request: HttpRequest, pk: int) -> HttpResponse:
    product = get_object_or_404(Product, pk=pk, is_active=True)
    language = get_language()
    title = localized(product, "title", language)
    images = list(product.images.all())
    context = {
        "product": product,
        "title": title,
        "description": localized(product, "description", language),
        "photos": _product_photos(images, title, language),
        "facts": _product_facts(product, language),
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
            _("Similar products appear once this product’s photos are indexed.")
            if exc.code == "not_indexed"
            else exc.message
        )
    except (IndexUnavailable, ModelUnavailable) as exc:
        logger.warning("Similar products unavailable: %s", exc)
        context["similar_error"] = _("Similar products cannot be shown right now: search is unavailable.")
    else:
        # Set only when "more like this" works for the product (it has an indexed photo and
        # search is up): the page then offers the whole list on the search page.
        context["similar"] = similar
        if request.method == "GET":
            search_record(
                page=similar,
                query="",
                language=language or "",
                source="page",
            )
        product_url = _product_url_maker()
        context["similar_cards"] = [
            {
                "url": product_url(hit.product.pk),
                "thumbnail_url": hit.image.thumbnail_url,
                "alt": localized_alt(hit.image, language),
                "dimensions": hit.image.thumbnail_dimensions,
                "title": localized(hit.product, "title", language),
                "price": hit.product.price,
                "currency": hit.product.currency,
            }
            for hit in similar.hits
        ]
    return render(request, "storefront/product.html", context)


# Facts use ATTRIBUTE_LABELS (above); any other attribute name is shown made readable
# ("gift_wrap" → "Gift wrap").
# The main photo's width on the page: the whole column on a phone, half of the page's
# 1240 px on a desktop (vitrine.css: main, .product).
PHOTO_SIZES_ATTRIBUTE = "(max-width: 799px) calc(100vw - 3.5rem), 564px"


def _product_facts(product: Product, language: str | None) -> list[tuple[str, str]]:
    """What a shopper reads about the product: its category and attributes, in their
    language where the shop sent it; translations and the shop's own keys are not facts."""
    category = localized(product, "category", language)
    facts = [(_("Category"), category)] if category else []
    for key, value in localized_attributes(product, language):
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value):
            label = ATTRIBUTE_LABELS.get(key.lower()) or key.replace("_", " ").strip().capitalize()
            facts.append((str(label), str(value)))
    return facts


def _product_photos(images: list, title: str, language: str | None = None) -> list[dict]:
    """Each photo as the gallery shows it: sizes for the main photo's srcset (the file
    for its width, never enlarged), the largest one for the link without JavaScript, a
    small square for the thumbnail button. Its alt text is the photo's own (in the
    language) where it has one, else its place among the product's photos."""
    photos = []
    for number, image in enumerate(images, start=1):
        candidates = thumbnail_srcset(image.sha256, image.width, image.height)
        default = candidates[min(1, len(candidates) - 1)]  # 640 wide, or the largest below it
        largest = candidates[-1]
        thumb_dimensions = thumbnail_dimensions(image.width, image.height, GALLERY_THUMBNAIL_SIZE)
        # A small original's thumbnail is the main photo's own file: one download, not two.
        thumb_url = (
            candidates[0][0]
            if candidates[0][1:] == thumb_dimensions
            else thumbnail_url(image.sha256, GALLERY_THUMBNAIL_SIZE)
        )
        photos.append(
            {
                "src": default[0],
                "srcset": ", ".join(f"{url} {width}w" for url, width, _ in candidates) if len(candidates) > 1 else "",
                "sizes": PHOTO_SIZES_ATTRIBUTE,
                "width": largest[1],
                "height": largest[2],
                "large_url": largest[0],
                "thumb_url": thumb_url,
                "thumb_dimensions": thumb_dimensions,
                "alt": localized_alt(image, language)
                or _("%(title)s, photo %(number)d of %(count)d")
                % {"title": title, "number": number, "count": len(images)},
            }
        )
    return photos


def _search_referer(request: HttpRequest) -> str:
    """Back to the search the shopper came from (same site only), else the search page."""
    referer = request.META.get("HTTP_REFERER", "")
    home = reverse("search")
    if referer and url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()}):
        parts = urlsplit(referer)
        if parts.path == home:
            return f"{home}?{parts.query}" if parts.query else home
    return home

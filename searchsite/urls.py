"""The site's URLs, composed from each app's own: the shoppers' pages (storefront), catalog
images and the admin's bulk upload (catalog), the index health page (embeddings), the
search analytics dashboard (analytics), the integration API (api), and the admin."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.defaults import page_not_found, server_error
from django.views.static import serve

from api import errors as api_errors
from searchsite.middleware import outage_in_flight, outage_response


def media(request, path):
    # MEDIA_ROOT read per request, so a changed setting (tests, reload) is honoured.
    return serve(request, path, document_root=settings.MEDIA_ROOT)


urlpatterns = [
    path("", include("storefront.urls")),
    path("", include("catalog.urls")),
    path("", include("embeddings.urls")),
    path("", include("analytics.urls")),
    path("admin/", admin.site.urls),
    path("", include("api.urls")),
]

if settings.VITRINE_SERVE_MEDIA:
    urlpatterns.append(re_path(rf"^{settings.MEDIA_URL.strip('/')}/(?P<path>.*)$", media))


def handler404(request, exception):
    if request.path.startswith("/api/"):
        return api_errors.not_found_json(request, exception)
    response = page_not_found(request, exception)
    response.shopper_page = True  # templates/404.html already (see ShopperNotFoundMiddleware)
    return response


def handler500(request):
    outage = outage_in_flight()
    if outage is not None:  # the database or the index failed outside a view
        return outage_response(request, outage)
    if request.path.startswith("/api/"):
        return api_errors.server_error_json(request)
    return server_error(request)

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.defaults import page_not_found, server_error
from django.views.static import serve

from catalog import bulk_views, views
from catalog.api import errors as api_errors
from embeddings import health


def media(request, path):
    # MEDIA_ROOT read per request, so a changed setting (tests, reload) is honoured.
    return serve(request, path, document_root=settings.MEDIA_ROOT)


urlpatterns = [
    path("", views.search_page, name="search"),
    path("products/<int:pk>/", views.product_page, name="product"),
    path("thumbnails/<str:name>", views.thumbnail, name="thumbnail"),
    path("search/photos/<str:token>.jpg", views.query_photo, name="query-photo"),
    path("admin/index-health/", admin.site.admin_view(health.index_health), name="index-health"),
    path("admin/bulk-upload/", admin.site.admin_view(bulk_views.bulk_upload_page), name="bulk-upload"),
    path("admin/bulk-upload/start", admin.site.admin_view(bulk_views.bulk_upload_start), name="bulk-upload-start"),
    path(
        "admin/bulk-upload/<int:upload_id>/files",
        admin.site.admin_view(bulk_views.bulk_upload_file),
        name="bulk-upload-file",
    ),
    path(
        "admin/bulk-upload/<int:upload_id>/items",
        admin.site.admin_view(bulk_views.bulk_upload_items),
        name="bulk-upload-items",
    ),
    path(
        "admin/bulk-upload/items/<int:item_id>/<str:action>",
        admin.site.admin_view(bulk_views.bulk_item_action),
        name="bulk-upload-item-action",
    ),
    path("admin/", admin.site.urls),
    path("", include("catalog.api.urls")),
]

if settings.VITRINE_SERVE_MEDIA:
    urlpatterns.append(re_path(rf"^{settings.MEDIA_URL.strip('/')}/(?P<path>.*)$", media))


def handler404(request, exception):
    if request.path.startswith("/api/"):
        return api_errors.not_found_json(request, exception)
    return page_not_found(request, exception)


def handler500(request):
    if request.path.startswith("/api/"):
        return api_errors.server_error_json(request)
    return server_error(request)

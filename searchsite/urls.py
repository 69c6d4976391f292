from django.conf import settings
from django.contrib import admin
from django.urls import path, re_path
from django.views.static import serve

from catalog import api, bulk_views, views
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
    path("api/v1/search", api.SearchView.as_view(), name="api-search"),
    # <path:>: the shop's ids may contain slashes (import_images makes "folder/name" ids).
    path("api/v1/products/<path:external_id>/images", api.ProductImagesView.as_view(), name="api-product-images"),
    path("api/v1/products/<path:external_id>", api.ProductView.as_view(), name="api-product"),
    path("api/v1/images/<int:image_id>", api.ImageView.as_view(), name="api-image"),
    path("api/v1/health", api.HealthView.as_view(), name="api-health"),
]

if settings.VITRINE_SERVE_MEDIA:
    urlpatterns.append(re_path(rf"^{settings.MEDIA_URL.strip('/')}/(?P<path>.*)$", media))

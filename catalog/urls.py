from django.contrib import admin
from django.urls import path

from catalog import bulk_views, views

urlpatterns = [
    path("thumbnails/<str:name>", views.thumbnail, name="thumbnail"),
    # The admin's bulk upload page and the JSON endpoints its script uses.
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
]

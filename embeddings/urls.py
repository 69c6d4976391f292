from django.contrib import admin
from django.urls import path

from embeddings import health

urlpatterns = [
    path("admin/index-health/", admin.site.admin_view(health.index_health), name="index-health"),
]

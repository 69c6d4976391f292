from django.contrib import admin
from django.urls import path

from analytics import dashboard

urlpatterns = [
    path("admin/search-analytics/", admin.site.admin_view(dashboard.search_dashboard), name="search-analytics"),
]

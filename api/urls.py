from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView

from api import errors, search_views, views
from api.docs import RedocView, SwaggerView

urlpatterns = [
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", RedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("api/v1/search", search_views.SearchView.as_view(), name="api-search"),
    path("api/v1/events", search_views.EventsView.as_view(), name="api-events"),
    path("api/v1/products", views.ProductListView.as_view(), name="api-products"),
    path("api/v1/bulk/products", views.ProductBulkView.as_view(), name="api-products-bulk"),
    path("api/v1/images/status", views.ImageStatusView.as_view(), name="api-images-status"),
    path("api/v1/images/<int:image_id>", views.ImageView.as_view(), name="api-image"),
    # <path:>: the shop's ids may contain slashes ("folder/name" ids from import_images).
    path("api/v1/products/<path:external_id>/images", views.ProductImagesView.as_view(), name="api-product-images"),
    path("api/v1/products/<path:external_id>/similar", search_views.ProductSimilarView.as_view(), name="api-similar"),
    path("api/v1/products/<path:external_id>", views.ProductView.as_view(), name="api-product"),
    path("api/v1/health", views.HealthView.as_view(), name="api-health"),
    path("api/v1/health/ready", views.ReadinessView.as_view(), name="api-health-ready"),
    path("api/v1/health/live", views.LivenessView.as_view(), name="api-health-live"),
    # JSON, not the HTML 404 page (which DEBUG would make Django's technical page).
    re_path(r"^api/", errors.not_found_json),
]

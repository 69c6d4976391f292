from django.urls import path

from storefront import views

urlpatterns = [
    path("", views.search_page, name="search"),
    path("products/<int:pk>/", views.product_page, name="product"),
    path("search/photos/<str:token>.jpg", views.query_photo, name="query-photo"),
]

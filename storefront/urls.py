from django.urls import path
from django.views.i18n import set_language

from storefront import suggest, views

urlpatterns = [
    path("", views.search_page, name="search"),
    # The language switch (a POST with the language and the page to return to).
    path("language/", set_language, name="set_language"),
    path("suggest", suggest.suggest, name="suggest"),
    path("products/<int:pk>/", views.product_page, name="product"),
    path("search/photos/<str:token>.jpg", views.query_photo, name="query-photo"),
    # Clicks on results, sent by static/vitrine/analytics.js (search analytics).
    path("events/click", views.click_event, name="click-event"),
]

"""URL routes: the REST API under /api."""

from django.urls import path

from medflow.api import api

urlpatterns = [
    path("api/", api.urls),
]

"""URL routes: the REST API under /api; the clinician web UI at the root."""

from django.urls import include, path

from medflow.api import api

urlpatterns = [
    path("api/", api.urls),
    path("", include("medflow.ops.urls")),
    path("", include("medflow.web.urls")),
]

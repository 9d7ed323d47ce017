"""URL routes: the REST API under /api; the root leads to the API docs until the web UI exists."""

from django.urls import include, path
from django.views.generic import RedirectView

from medflow.api import api

urlpatterns = [
    path("api/", api.urls),
    path("", include("medflow.ops.urls")),
    path("", include("medflow.web.urls")),
    # Until the web UI has a home page, the root leads to the API docs.
    path("", RedirectView.as_view(url="/api/docs", permanent=False)),
]

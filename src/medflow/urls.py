"""URL routes: the REST API under /api; the root leads to the API docs until the web UI exists."""

from django.urls import path
from django.views.generic import RedirectView

from medflow.api import api

urlpatterns = [
    path("api/", api.urls),
    path("", RedirectView.as_view(url="/api/docs", permanent=False)),
]

"""Routes of the operations endpoints: /health and /metrics."""

from django.urls import path

from medflow.ops import views

urlpatterns = [
    path("health", views.health_view, name="ops-health"),
    path("metrics", views.metrics_view, name="ops-metrics"),
]

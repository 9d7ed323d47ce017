"""Routes of the operations endpoints: /health and /metrics (to be filled in)."""

urlpatterns: list = []

"""Routes of the clinician web UI (to be filled in)."""

urlpatterns: list = []

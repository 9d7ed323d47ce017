"""REST endpoints of the work context (to be filled in)."""

from ninja import Router

router = Router(tags=["work"])

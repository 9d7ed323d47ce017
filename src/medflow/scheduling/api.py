"""REST endpoints of the scheduling context (to be filled in)."""

from ninja import Router

router = Router(tags=["scheduling"])

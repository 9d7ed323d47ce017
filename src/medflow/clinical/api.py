"""REST endpoints of the clinical context (to be filled in)."""

from ninja import Router

router = Router(tags=["clinical"])

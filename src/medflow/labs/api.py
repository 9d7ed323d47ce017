"""REST endpoints of the labs context (to be filled in)."""

from ninja import Router

router = Router(tags=["labs"])

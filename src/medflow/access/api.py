"""Access REST endpoints: session login/logout (throttled, TOTP) and break-glass access."""

from datetime import datetime
from uuid import UUID

from django.contrib import auth
from django.http import HttpRequest
from ninja import Field, Router, Schema, Status

from medflow.access import services
from medflow.access.auth import LockedOut, LoginFailed, log_in
from medflow.access.models import BreakGlassGrantReadModel
from medflow.access.request_context import context_for
from medflow.api_common import ERRORS, ErrorOut


class StrictIn(Schema):
    model_config = {"extra": "forbid"}


class LoginIn(StrictIn):
    username: str = Field(min_length=1, max_length=150)
    password: str = Field(min_length=1, max_length=4096)
    otp: str | None = Field(default=None, max_length=20)


class LoginOut(Schema):
    user_id: int
    username: str


class BreakGlassIn(StrictIn):
    reason: str = Field(min_length=1, max_length=500)


class BreakGlassOut(Schema):
    id: UUID
    patient_id: UUID
    expires_at: datetime
    version: int


auth_router = Router(tags=["auth"], auth=None)
router = Router(tags=["access"])


@auth_router.post("/login", response={200: LoginOut, 415: ErrorOut, 429: ErrorOut, **ERRORS},
                  summary="Start a session (username, password, and otp for TOTP users)")
def login(request: HttpRequest, payload: LoginIn):
    # A cross-site HTML form cannot send application/json: this keeps the login itself from being
    # forged (login CSRF) although it needs no CSRF token.
    if request.content_type != "application/json":
        return Status(415, {"error": {"code": "unsupported_media_type", "field": None,
                                      "message": "send the credentials as application/json"}})
    try:
        user = log_in(request, payload.username, payload.password, payload.otp)
    except LockedOut as exc:
        return Status(429, {"error": {"code": exc.code, "message": exc.message, "field": exc.field}})
    except LoginFailed as exc:
        return Status(401, {"error": {"code": exc.code, "message": exc.message, "field": exc.field}})
    return {"user_id": user.pk, "username": user.get_username()}


@auth_router.post("/logout", response={204: None}, summary="End the session")
def logout(request: HttpRequest):
    auth.logout(request)
    return Status(204, None)


@router.post("/patients/{patient_id}/break-glass", response={201: BreakGlassOut, **ERRORS},
             summary="Open a patient of another clinic, read only, for a limited time (clinicians)")
def break_glass(request: HttpRequest, patient_id: UUID, payload: BreakGlassIn):
    result = services.break_glass(context_for(request), patient_id, reason=payload.reason)
    grant = BreakGlassGrantReadModel.objects.get(id=result.aggregate_id)
    return Status(201, {"id": grant.id, "patient_id": grant.patient_id,
                        "expires_at": grant.expires_at, "version": result.version})

"""The REST API: one NinjaAPI, its authentication, and the one exception-to-HTTP map."""

import orjson
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser
from ninja.renderers import BaseRenderer
from ninja.security import HttpBearer, django_auth

from medflow import errors
from medflow.access import tokens
from medflow.access.api import auth_router
from medflow.access.api import router as access_router
from medflow.audit.api import router as audit_router
from medflow.clinical.api import router as clinical_router
from medflow.labs.api import router as labs_router
from medflow.ops.metrics import count_failed_command
from medflow.patients.api import router as patients_router
from medflow.scheduling.api import router as scheduling_router
from medflow.timeline.api import router as timeline_router
from medflow.work.api import router as work_router


class OrjsonRenderer(BaseRenderer):
    media_type = "application/json"

    def render(self, request, data, *, response_status):
        return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)


class OrjsonParser(Parser):
    """Parse JSON bodies with orjson; an empty body is an empty object (bodies with defaults)."""

    def parse_body(self, request):
        return orjson.loads(request.body) if request.body else {}


class BearerToken(HttpBearer):
    """Authenticate programs with `Authorization: Bearer <token>`."""

    def authenticate(self, request: HttpRequest, token: str):
        user = tokens.authenticate(token)
        if user is not None:
            request.user = user
        return user


api = NinjaAPI(
    title="MedFlow API",
    version="1",
    description="Event-sourced patient records. Errors: {\"error\": {code, message, field}}.",
    auth=[BearerToken(), django_auth],
    renderer=OrjsonRenderer(),
    parser=OrjsonParser(),
    urls_namespace="api",
)
api.add_router("/patients", patients_router)
api.add_router("/patients", timeline_router)
api.add_router("/patients", audit_router)
# Patient-scoped clinical routes live under /patients/{id}/...; each router declares full paths.
api.add_router("/", clinical_router)
api.add_router("/", labs_router)
api.add_router("/", scheduling_router)
api.add_router("/", work_router)
api.add_router("/", access_router)  # /patients/{id}/break-glass
api.add_router("/auth", auth_router)  # session login/logout, no auth

STATUS = {
    errors.InvalidInput: 422,
    errors.RuleViolated: 422,
    errors.NotFound: 404,
    errors.Gone: 410,
    errors.VersionConflict: 409,
    errors.Conflict: 409,
    errors.PreconditionRequired: 428,
    errors.PermissionDenied: 403,
}


def error_response(request, status: int, code: str, message: str, field: str | None = None):
    """Return the one JSON error shape every endpoint uses."""
    body = {"error": {"code": code, "message": message, "field": field}}
    return api.create_response(request, body, status=status)


@api.exception_handler(errors.MedflowError)
def on_medflow_error(request, exc: errors.MedflowError):
    status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 400)
    count_failed_command(exc.code)
    response = error_response(request, status, exc.code, exc.message, exc.field)
    if isinstance(exc, errors.VersionConflict) and exc.actual is not None:
        response["ETag"] = f'"{exc.actual}"'
    return response


def _field_name(loc: tuple | list) -> str | None:
    # ninja prefixes the source ("body", "query", "path") and the parameter name.
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "payload")]
    return ".".join(parts) or None


@api.exception_handler(ValidationError)
def on_validation_error(request, exc: ValidationError):
    first = exc.errors[0] if exc.errors else {}
    field = _field_name(first.get("loc", ()))
    message = first.get("msg", "invalid input")
    if field:
        message = f"{field}: {message}"
    return error_response(request, 422, "invalid_input", message, field)


@api.exception_handler(AuthenticationError)
def on_auth_error(request, exc):
    return error_response(request, 401, "unauthenticated", "credentials missing or invalid")


@api.exception_handler(Http404)
def on_404(request, exc):
    return error_response(request, 404, "not_found", str(exc) or "not found")


@api.exception_handler(HttpError)
def on_http_error(request, exc: HttpError):
    return error_response(request, exc.status_code, "bad_request", str(exc))


def json_404(request, exception=None) -> HttpResponse:
    """Answer unknown URLs under /api with the JSON error shape."""
    body = {"error": {"code": "not_found", "message": "no such endpoint", "field": None}}
    return HttpResponse(orjson.dumps(body), status=404, content_type="application/json")

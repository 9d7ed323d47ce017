"""Operations middleware: request id and user id for the logs, a 503 when the pool is exhausted."""

import contextvars
import logging
import time
import uuid

import orjson
from django.http import HttpResponse

log = logging.getLogger("medflow.requests")

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
user_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("user_id", default=None)


def is_pool_timeout(exc: BaseException) -> bool:
    """Tell whether the exception is (or wraps) psycopg_pool's PoolTimeout."""
    try:
        from psycopg_pool import PoolTimeout
    except ImportError:  # pragma: no cover - SQLite-only installs
        return False
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, PoolTimeout):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def database_busy_response() -> HttpResponse:
    body = {"error": {"code": "database_busy",
                      "message": "all database connections are in use; retry shortly", "field": None}}
    response = HttpResponse(orjson.dumps(body), status=503, content_type="application/json")
    response["Retry-After"] = "1"
    return response


def _user_id(request) -> str | None:
    ctx = getattr(request, "_medflow_context", None)
    if ctx is not None and getattr(ctx, "user_id", None) is not None:
        return str(ctx.user_id)
    user = request.__dict__.get("user")
    # Never force the lazy session user here: that would query the database for a log line.
    wrapped = getattr(user, "_wrapped", user)
    if wrapped is None or type(wrapped).__name__ == "object":
        return None
    pk = getattr(wrapped, "pk", None)
    return str(pk) if pk is not None else None


class OpsMiddleware:
    """Give every request an id (X-Request-ID, kept or made), expose it and the user to the log
    records of the request, log one line per request (method, path without query, status,
    duration; no PHI), and answer 503 `database_busy` when no pooled connection came in time."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = request.META.get("HTTP_X_REQUEST_ID", "")[:100]
        if not request_id:
            request_id = str(uuid.uuid4())
            request.META["HTTP_X_REQUEST_ID"] = request_id
            request.__dict__.pop("headers", None)  # rebuilt from META with the new id
        request_token = request_id_var.set(request_id)
        user_token = user_id_var.set(None)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            user_id_var.set(_user_id(request))
            response.setdefault("X-Request-ID", request_id)
            log.info("%s %s %s", request.method, request.path, response.status_code,
                     extra={"method": request.method, "path": request.path,
                            "status": response.status_code,
                            "duration_ms": round((time.perf_counter() - started) * 1000, 1)})
            return response
        finally:
            request_id_var.reset(request_token)
            user_id_var.reset(user_token)

    def process_exception(self, request, exception):
        if is_pool_timeout(exception):
            log.warning("database pool exhausted; answered 503 database_busy")
            return database_busy_response()
        return None

"""Write the access-log entries of a request's reads before its response leaves."""

import logging

import orjson
from django.http import HttpResponse

from medflow.audit.chain import record_reads

log = logging.getLogger(__name__)


class AccessLogMiddleware:
    """After the view, log each patient whose data the request read; fail closed."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        ctx = getattr(request, "_medflow_context", None)
        if ctx is None or not ctx.reads:
            return response
        try:
            record_reads(ctx, f"{request.method} {request.path}", ctx.reads)
        except Exception:
            # Data that cannot be audited is not served.
            log.exception("access log write failed; withholding the response")
            body = {"error": {"code": "audit_unavailable",
                              "message": "the access log could not be written", "field": None}}
            return HttpResponse(orjson.dumps(body), status=503, content_type="application/json")
        return response

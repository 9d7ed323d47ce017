"""GET /health (JSON, 200 or 503) and GET /metrics (Prometheus text format)."""

import ipaddress

import orjson
from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from medflow.ops import health, metrics


@never_cache
@require_safe
def health_view(request):
    healthy, report = health.run_checks()
    return HttpResponse(orjson.dumps(report), status=200 if healthy else 503,
                        content_type="application/json")


def _metrics_allowed(request) -> bool:
    token = settings.MEDFLOW_METRICS_TOKEN
    if token:
        return request.headers.get("Authorization", "") == f"Bearer {token}"
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


@never_cache
@require_safe
def metrics_view(request):
    if not _metrics_allowed(request):
        body = {"error": {"code": "forbidden", "message": "metrics are not public", "field": None}}
        return HttpResponse(orjson.dumps(body), status=403, content_type="application/json")
    return HttpResponse(metrics.render(), content_type=CONTENT_TYPE_LATEST)

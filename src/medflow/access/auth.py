"""Login hardening: throttled password checks (django-axes) and the TOTP second factor (django-otp)."""

import orjson
from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest, HttpResponse
from django_otp import login as otp_login
from django_otp import match_token, user_has_device

from medflow.errors import MedflowError


class LoginFailed(MedflowError):
    """Wrong username, password or one-time code (401); which one is never said."""

    code = "login_failed"


class LockedOut(MedflowError):
    """Too many failed logins from this address for this username (429)."""

    code = "locked_out"


class ThrottledBackend(AxesStandaloneBackend):
    """Refuse logins while locked out; leave request-less checks alone.

    Every login over HTTP passes its request, so every one is counted and throttled. Only code
    that checks a password without a request (Django's test client, scripts) is let through to
    the next backend, since there is no address to throttle.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def log_in(request: HttpRequest, username: str, password: str, otp: str | None = None):
    """Check the password (and the one-time code of a user with a confirmed TOTP device), then
    start a session. Failures are counted by django-axes, wrong codes included."""
    user = auth.authenticate(request, username=username, password=password)
    if getattr(request, "axes_locked_out", False):
        raise LockedOut("too many failed logins; try again later", field="username")
    if user is None:
        raise LoginFailed("username, password or one-time code is wrong", field="password")
    device = None
    if user_has_device(user, confirmed=True):
        device = match_token(user, otp.strip()) if otp else None
        if device is None:
            user_login_failed.send(sender=__name__, credentials={"username": username},
                                   request=request)
            if getattr(request, "axes_locked_out", False):
                raise LockedOut("too many failed logins; try again later", field="username")
            field = "otp"
            raise LoginFailed("a valid one-time code (otp) is required for this user", field=field,
                              code="otp_required" if not otp else None)
    auth.login(request, user)
    if device is not None:
        otp_login(request, device)
    return user


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """Answer a locked-out login (settings.AXES_LOCKOUT_CALLABLE): JSON under /api, text elsewhere."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    message = f"too many failed logins; try again in {minutes} minutes"
    if request.path.startswith("/api/"):
        body = {"error": {"code": "locked_out", "message": message, "field": "username"}}
        return HttpResponse(orjson.dumps(body), status=429, content_type="application/json")
    return HttpResponse(message.capitalize() + ".", status=429, content_type="text/plain")

"""API tokens: shown once, stored hashed, revocable, expiring."""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from medflow.access.models import ApiToken

PREFIX = "mf_"


def _hash(raw: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough (no password stretching needed).
    return hashlib.sha256(raw.encode()).hexdigest()


def create_token(user, *, name: str = "", days: int | None = None) -> tuple[ApiToken, str]:
    """Create a token for `user`; return it with the plaintext, which is never stored."""
    raw = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=raw[:12], key_hash=_hash(raw),
        expires_at=timezone.now() + timedelta(days=days or settings.MEDFLOW_TOKEN_DAYS),
    )
    return token, raw


def authenticate(raw: str):
    """Return the active user owning a valid token, or None."""
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=_hash(raw), revoked_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token.user


def revoke(prefix: str) -> int:
    """Revoke every live token starting with `prefix`; return how many."""
    return ApiToken.objects.filter(prefix=prefix[:12], revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )

"""Django's cache (Redis when REDIS_URL is set) behind a guard: with the cache down MedFlow is
slower, never failing. Counts hits, misses and errors so that the hit rate can be shown."""

import logging
import threading
import time
from typing import Any

from django.core.cache import cache as django_cache

log = logging.getLogger(__name__)
_MISSING = object()
# After an error, leave the cache alone this long instead of paying a timeout on every call.
BACKOFF_SECONDS = 5.0


class GuardedCache:
    """get / set / delete that never raise, with counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.hits = self.misses = self.errors = self.sets = 0
        self._down_until = 0.0

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, op: str, exc: Exception) -> None:
        with self._lock:
            self.errors += 1
            self._down_until = time.monotonic() + BACKOFF_SECONDS
        log.warning("cache %s failed (%s); carrying on without the cache", op, type(exc).__name__)

    def get(self, key: str) -> Any:
        """Return the cached value or None (on a miss, an error, or while backing off)."""
        if not self._available():
            with self._lock:
                self.misses += 1
            return None
        try:
            value = django_cache.get(key, _MISSING)
        except Exception as exc:  # any backend failure means "no cache"
            self._failed("get", exc)
            return None
        with self._lock:
            if value is _MISSING:
                self.misses += 1
                return None
            self.hits += 1
        return value

    def set(self, key: str, value: Any, timeout: float | None = 3600) -> None:
        """Store a value; a failure is counted and ignored."""
        if not self._available():
            return
        try:
            django_cache.set(key, value, timeout)
            with self._lock:
                self.sets += 1
        except Exception as exc:
            self._failed("set", exc)

    def delete(self, key: str) -> None:
        """Drop a key; a failure is counted and ignored."""
        try:
            django_cache.delete(key)
        except Exception as exc:
            self._failed("delete", exc)

    def stats(self) -> dict[str, Any]:
        """Return the counters and the hit rate of this process."""
        lookups = self.hits + self.misses
        return {
            "hits": self.hits, "misses": self.misses, "errors": self.errors, "sets": self.sets,
            "hit_rate": round(self.hits / lookups, 4) if lookups else None,
            "backing_off": not self._available(),
        }

    def reset(self) -> None:
        """Zero the counters and forget any back-off (tests, operators)."""
        with self._lock:
            self.hits = self.misses = self.errors = self.sets = 0
            self._down_until = 0.0


cache = GuardedCache()

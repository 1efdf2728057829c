"""Per-merchant rolling 60-second request window, on the sandbox clock."""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

from .clock import SandboxClock
from .config import RATE_LIMIT_BASE, RATE_LIMIT_TIERS

WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a request may run, and the ``X-RateLimit-*`` values to send with the answer."""

    allowed: bool
    limit: int
    remaining: int
    reset: int
    retry_after: int

    def headers(self) -> dict[str, str]:
        """The headers every /v1 answer carries (plus ``Retry-After`` when refused)."""
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after)
        return out


class RateLimiter:
    """Counts accepted requests per merchant in the last 60 seconds; refused ones do not count."""

    def __init__(
        self, clock: SandboxClock, per_minute: int | None = RATE_LIMIT_BASE, multiplier: int = 1
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = {}
        self._base: int | None = per_minute
        self._multiplier = multiplier

    @property
    def limit(self) -> int | None:
        """The effective ceiling per minute, or None when limiting is off."""
        if self._base is None:
            return None
        return self._base * self._multiplier

    def configure(self, *, per_minute: int | None, multiplier: int = 1) -> None:
        """Set the base ceiling (None turns limiting off) and the tier multiplier."""
        if per_minute is not None and per_minute < 1:
            raise ValueError("per_minute must be positive, or None to turn limiting off")
        if multiplier not in RATE_LIMIT_TIERS:
            raise ValueError(f"multiplier must be one of {RATE_LIMIT_TIERS}")
        with self._lock:
            self._base = per_minute
            self._multiplier = multiplier

    def _window(self, merchant: str, now: float) -> deque[float]:
        hits = self._hits.setdefault(merchant, deque())
        while hits and hits[0] <= now - WINDOW_SECONDS:
            hits.popleft()
        return hits

    def _decision(self, hits: deque[float], now: float, allowed: bool, limit: int) -> Decision:
        reset_at = hits[0] + WINDOW_SECONDS if hits else now + WINDOW_SECONDS
        return Decision(
            allowed=allowed,
            limit=limit,
            remaining=max(0, limit - len(hits)),
            reset=math.ceil(reset_at),
            retry_after=max(1, math.ceil(reset_at - now)),
        )

    def hit(self, merchant: str) -> Decision | None:
        """Count one request; None when limiting is off."""
        limit = self.limit
        if limit is None:
            return None
        now = self._clock.time()
        with self._lock:
            hits = self._window(merchant, now)
            if len(hits) >= limit:
                return self._decision(hits, now, False, limit)
            hits.append(now)
            return self._decision(hits, now, True, limit)

    def peek(self, merchant: str) -> Decision | None:
        """The current state without counting (for answers that never reached the limiter)."""
        limit = self.limit
        if limit is None:
            return None
        now = self._clock.time()
        with self._lock:
            hits = self._window(merchant, now)
            return self._decision(hits, now, True, limit)

    def exhausted(self, merchant: str, retry_after: int) -> Decision:
        """The headers of an injected 429: nothing left, retry after ``retry_after`` seconds."""
        limit = self.limit or RATE_LIMIT_BASE
        now = self._clock.time()
        return Decision(
            allowed=False,
            limit=limit,
            remaining=0,
            reset=math.ceil(now + retry_after),
            retry_after=retry_after,
        )

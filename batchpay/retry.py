"""When and how long the API client waits before trying a request again.

The decision is a predicate over batchpay's own error types, following the
error catalog's "Retry semantics" table:

* retried: :class:`~batchpay.errors.TransportError` (network, timeout),
  :class:`~batchpay.errors.ServerError` with status 500/502/503/504,
  :class:`~batchpay.errors.RateLimitedError` (429) and
  :class:`~batchpay.errors.IdempotencyInFlightError` (409 ``idempotency_in_flight``);
* never retried: everything else — 400, 401, 403, 404, 409 ``idempotency_conflict``
  and state conflicts, 410, 413, 422.

A request that changes something (``POST``) is only retried after an answer we
cannot trust when it carries an ``Idempotency-Key``; without one, only failures
that prove the request was never processed (429, a refused connection) are retried.

Waits grow exponentially with jitter, capped at ``max_delay``, and are never
shorter than the server's ``Retry-After``. :func:`set_testing` turns the
default sleeper into a no-op, like ``stamina.set_testing``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from batchpay.errors import (
    IdempotencyInFlightError,
    RateLimitedError,
    ServerError,
    TransportError,
)

__all__ = [
    "RETRY_STATUSES",
    "RetryPolicy",
    "is_retryable",
    "is_testing",
    "proves_not_processed",
    "set_testing",
]

Sleep = Callable[[float], Awaitable[None]]

#: 5xx answers the catalog calls safe to retry with the same idempotency key.
RETRY_STATUSES = frozenset({500, 502, 503, 504})

_testing = False


def set_testing(enabled: bool) -> None:
    """Turn off (or back on) every *default* wait in the client: retry backoff and pacing.

    An explicitly injected ``sleep=`` is still called, so tests can record waits.
    """
    global _testing
    _testing = bool(enabled)


def is_testing() -> bool:
    """Whether :func:`set_testing` has turned default waits off."""
    return _testing


async def _no_sleep(_seconds: float) -> None:
    return None


def is_retryable(error: BaseException) -> bool:
    """Whether the catalog calls ``error`` safe to retry with the same idempotency key."""
    if isinstance(error, TransportError | RateLimitedError | IdempotencyInFlightError):
        return True
    return isinstance(error, ServerError) and error.status in RETRY_STATUSES


def proves_not_processed(error: BaseException) -> bool:
    """Whether ``error`` shows the server did not act on the request (safe even without a key)."""
    if isinstance(error, RateLimitedError | IdempotencyInFlightError):
        return True
    return isinstance(error, TransportError) and error.sent is False


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts a request gets and how long to wait between them.

    ``max_attempts`` counts the first try. The wait before attempt ``n + 1`` is
    ``min(max_delay, base_delay * 2 ** (n - 1))``, shortened by up to ``jitter``
    of itself at random, and never less than a ``Retry-After`` the server sent.
    A ``Retry-After`` longer than ``max_retry_after`` is not waited for: the
    error is raised so the caller can decide. ``sleep=None`` means
    :func:`asyncio.sleep`, or no wait at all under :func:`set_testing`.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.5
    max_retry_after: float = 300.0
    sleep: Sleep | None = field(default=None, compare=False)
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be between 0 and 1")

    @classmethod
    def no_wait(cls, max_attempts: int = 5) -> RetryPolicy:
        """A policy that retries as usual but never sleeps (for tests)."""
        return cls(max_attempts=max_attempts, sleep=_no_sleep)

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy with a single attempt: errors surface at once."""
        return cls(max_attempts=1)

    def with_sleep(self, sleep: Sleep) -> RetryPolicy:
        """A copy of this policy that waits with ``sleep``."""
        return replace(self, sleep=sleep)

    def should_retry(self, error: BaseException, attempt: int, *, safe_to_repeat: bool) -> bool:
        """Whether to make attempt ``attempt + 1`` after ``error``.

        ``safe_to_repeat`` is true for reads and for writes carrying an idempotency key.
        """
        if attempt >= self.max_attempts or not is_retryable(error):
            return False
        if not safe_to_repeat and not proves_not_processed(error):
            return False
        retry_after = _retry_after(error)
        return retry_after is None or retry_after <= self.max_retry_after

    def delay(self, error: BaseException, attempt: int) -> float:
        """Seconds to wait after attempt number ``attempt`` failed with ``error``."""
        backoff = min(self.max_delay, self.base_delay * 2.0 ** max(0, attempt - 1))
        backoff *= 1.0 - self.jitter * self.rng.random()
        retry_after = _retry_after(error)
        if retry_after is not None and retry_after > backoff:
            # At least Retry-After, plus a little spread so a crowd of waiting
            # requests does not return at the same instant (thundering herd).
            spread = min(self.base_delay, retry_after) * self.jitter * self.rng.random()
            return retry_after + spread
        return backoff

    async def wait(self, seconds: float) -> None:
        """Sleep ``seconds`` with the configured sleeper (nothing under testing mode)."""
        if self.sleep is not None:
            await self.sleep(seconds)
        elif not _testing:
            await asyncio.sleep(seconds)


def _retry_after(error: BaseException) -> float | None:
    value = getattr(error, "retry_after", None)
    return float(value) if isinstance(value, int | float) else None

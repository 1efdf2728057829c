"""Client-side pacing that fills the API's rate limit without tripping it.

The Anton API allows each merchant ``limit`` requests (default 1,000) in any
rolling 60-second window, counted on the server. One :class:`RateLimiter` is
shared by every concurrent call of a client and combines four rules; a request
may leave only when all of them agree:

1. **Pacer** — a token bucket refilled at ``limit × utilisation / 60`` per
   second (97 % by default) holding at most ``burst`` tokens. Steady traffic is
   spread evenly, so the server's window never holds more than ~97 % of the
   limit and the rest is headroom for clock and latency jitter.
2. **Window cap** — a log of our own send times: never more than ``limit``
   requests inside any window of ``60 s + guard`` (``guard`` covers the
   difference in latency between two requests, so the server, which counts
   arrivals, never sees more than ``limit`` either). This is a hard guarantee
   whatever the burst allowance.
3. **Server budget** — every response's ``X-RateLimit-Remaining`` says how many
   more requests the server will take before ``X-RateLimit-Reset``; requests we
   sent after that one may not have been counted yet, so they are subtracted.
   When the budget is spent (another worker shares the quota) everyone waits for
   the reset, then resumes at the pacer's rate without a burst.
4. **Pause** — a ``429`` with ``Retry-After`` pauses every caller until then,
   then resumes at the pacer's rate without a burst (no thundering herd).

``X-RateLimit-Limit`` on any response replaces the configured limit, so a
lower (or a promoted, higher) tier is learned on the first answer. With
``learn_unlimited`` (the client's default) the configured limit is only assumed
until the first answer: an answer that announces no limit at all (the provider
sends the headers on every response when it has one) turns the pacer off, so a
provider without a limit is not paced at 1,000/min; a later announcement or a
``429`` still applies. Clock and sleep are injectable so tests run in simulated
time.

:class:`InFlight` sizes how many requests may be in flight at once from the
pace and the latency observed (Little's law, with headroom), up to a cap when no
limit is announced, halving on a ``429``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import httpx

from batchpay.files import open_files_limit
from batchpay.retry import is_testing

__all__ = ["InFlight", "Permit", "RateLimiter", "max_in_flight"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Permit:
    """Permission for one HTTP attempt: its sequence number and when it was granted."""

    seq: int
    granted_at: float


class RateLimiter:
    """Paces requests within a rolling-window rate limit and learns the limit from responses.

    ``limit_per_minute=None`` paces nothing until the server announces a limit
    (``Retry-After`` pauses are still honoured). ``sleep=None`` means
    :func:`asyncio.sleep`, or no waiting at all under
    :func:`batchpay.retry.set_testing`; an injected ``sleep`` must advance the
    injected ``clock``.
    """

    def __init__(
        self,
        limit_per_minute: int | None = 1000,
        *,
        utilisation: float = 0.97,
        burst: int | None = None,
        window: float = 60.0,
        guard: float = 1.0,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        sleep: Sleep | None = None,
        learn_unlimited: bool = False,
    ) -> None:
        if limit_per_minute is not None and limit_per_minute < 1:
            raise ValueError("limit_per_minute must be at least 1")
        if not 0.0 < utilisation <= 1.0:
            raise ValueError("utilisation must be in (0, 1]")
        if burst is not None and burst < 1:
            raise ValueError("burst must be at least 1")
        self._limit = limit_per_minute
        self._learn_unlimited = learn_unlimited
        self._utilisation = utilisation
        self._burst_setting = burst
        self._window = window
        self._span = window + guard
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._sent: deque[float] = deque()
        now = clock()
        self._tokens = float(self._burst())
        self._tokens_at = now
        self._pause_until = -math.inf
        self._hold_until = -math.inf  # no tokens accrue before this (after a pause or stall)
        self._budget: int | None = None
        self._budget_until = -math.inf
        self._info_seq = 0
        self._seq = 0
        self.throttled = 0
        """How many 429 answers this limiter has been told about."""

    @classmethod
    def unlimited(cls) -> RateLimiter:
        """A limiter that paces nothing until a response announces a limit or a 429 arrives."""
        return cls(None)

    @property
    def limit(self) -> int | None:
        """The limit per window currently believed (configured, then learned)."""
        return self._limit

    @property
    def rate(self) -> float | None:
        """Steady pace in requests per second, or None when unlimited."""
        if self._limit is None:
            return None
        return self._limit * self._utilisation / self._window

    @property
    def granted(self) -> int:
        """How many permits have been handed out."""
        return self._seq

    async def acquire(self) -> Permit:
        """Wait until a request may be sent, then count it as sent."""
        async with self._lock:  # FIFO: callers leave in the order they arrived
            while True:
                now = self._clock()
                wait = self._wait_time(now)
                if wait <= _EPSILON or (self._sleep is None and is_testing()):
                    return self._grant(now)
                if self._sleep is not None:
                    await self._sleep(wait)
                else:
                    await asyncio.sleep(wait)

    def observe(self, permit: Permit, status: int | None, headers: Mapping[str, str]) -> None:
        """Learn from the answer to ``permit``'s request (status None: no answer)."""
        now = self._clock()
        limit = _int_header(headers, "x-ratelimit-limit")
        remaining = _int_header(headers, "x-ratelimit-remaining")
        reset_at = self._reset_time(headers, now)
        newest = permit.seq >= self._info_seq
        if newest and (limit is not None or remaining is not None):
            self._info_seq = permit.seq
            if limit is not None and limit >= 1 and limit != self._limit:
                self._set_limit(limit, now)
            if remaining is not None:
                # Requests we sent after this one may not have reached the
                # server's count yet: assume none did.
                self._budget = remaining - (self._seq - permit.seq)
                self._budget_until = reset_at if reset_at is not None else now + self._window
        elif (
            newest
            and self._learn_unlimited
            and status is not None
            and status < 500
            and status != 429
            and self._limit is not None
        ):
            # An answer that announces no limit: the provider has none for us.
            self._info_seq = permit.seq
            self._refill(now)
            self._limit = None
            self._sent.clear()
        if status == 429:
            self.throttled += 1
            retry_after = _float_header(headers, "retry-after")
            if retry_after is not None:
                until = now + retry_after
            elif reset_at is not None:
                until = reset_at
            else:
                until = now + 1.0
            self._pause_until = max(self._pause_until, until)
            # Nothing more until the pause ends; the answers after it say what is left.
            self._budget = 0
            self._budget_until = self._pause_until
            self._hold(now, self._pause_until)

    # -- internals ---------------------------------------------------------

    def _burst(self) -> int:
        if self._burst_setting is not None:
            return self._burst_setting
        if self._limit is None:
            return 1
        # Half the headroom the pacer leaves, so a burst on top of steady pacing
        # still fits the window.
        return max(1, int(self._limit * (1.0 - self._utilisation) / 2))

    def _set_limit(self, limit: int, now: float) -> None:
        self._refill(now)
        self._limit = limit
        self._tokens = min(self._tokens, float(self._burst()))

    def _hold(self, now: float, until: float) -> None:
        """Empty the bucket and let nothing accrue before ``until``: resume at the steady pace."""
        self._tokens = 0.0
        self._tokens_at = now
        self._hold_until = max(self._hold_until, until)

    def _refill(self, now: float) -> None:
        rate = self.rate
        start = max(self._tokens_at, self._hold_until)
        if rate is not None and now > start:
            self._tokens = min(float(self._burst()), self._tokens + (now - start) * rate)
        self._tokens_at = max(self._tokens_at, now)

    def _wait_time(self, now: float) -> float:
        wait = self._pause_until - now
        if self._budget is not None:
            if now >= self._budget_until:
                self._budget = None
            elif self._budget <= 0:
                # Another client is using the quota: no burst once it frees.
                self._hold(now, self._budget_until)
                wait = max(wait, self._budget_until - now)
        if self._limit is None:
            return wait
        self._refill(now)
        rate = self.rate
        assert rate is not None
        if self._tokens < 1.0 - _EPSILON:
            wait = max(wait, (1.0 - self._tokens) / rate)
        while self._sent and self._sent[0] <= now - self._span:
            self._sent.popleft()
        excess = len(self._sent) - self._limit
        if excess >= 0:
            wait = max(wait, self._sent[excess] + self._span - now)
        return wait

    def _grant(self, now: float) -> Permit:
        self._refill(now)
        if self._limit is not None:
            self._tokens = max(0.0, self._tokens - 1.0)
            self._sent.append(now)
        if self._budget is not None:
            self._budget -= 1
        self._seq += 1
        return Permit(seq=self._seq, granted_at=now)

    def _reset_time(self, headers: Mapping[str, str], now: float) -> float | None:
        reset = _float_header(headers, "x-ratelimit-reset")
        if reset is None:
            return None
        # Reset is a unix timestamp; bring it onto our monotonic clock and keep
        # it sane (a server clock far off must not stall us beyond one window).
        return min(max(now, now + (reset - self._wall_clock())), now + self._window)


# Requests in flight when the provider announces no limit. Measured with
# scripts/bench_run.py (5,000 known payees, no limit, 100 ms latency; alternating arms, 3
# rounds): 256 sent them in 3.94-4.09 s, 384 in 3.49-3.60 s, the same CPU per payout. A row
# spends part of its turn outside its request (its intent's commit, the journal's writes), so
# 256 rows kept about 180 requests in flight.
_MAX_IN_FLIGHT = 384
# File descriptors kept for everything but the connections (journal, its log, reports, ...).
_FD_RESERVE = 64


def max_in_flight() -> int:
    """Requests (and connections) allowed in flight at most: 384, or fewer when this process
    may open fewer files (half of what ``RLIMIT_NOFILE`` leaves beside a reserve: macOS's
    default of 256 gives 96), so a run never fails to open a connection or its journal."""
    files = open_files_limit()
    if files is None:
        return _MAX_IN_FLIGHT
    return max(8, min(_MAX_IN_FLIGHT, (files - _FD_RESERVE) // 2))


class InFlight:
    """How many requests may be in flight at once: sized from the pace and the latency.

    A fixed ``size`` is used as given. Otherwise the capacity is the pace (``rate()``,
    requests per second; None when no limit is known) times the latency observed (a moving
    average of :meth:`release` durations), doubled for headroom, between ``floor`` and
    ``cap``; with no limit it is ``cap``. A ``429`` halves it (never below 1), and it grows
    back by one per success.
    """

    def __init__(
        self,
        size: int | None = None,
        *,
        rate: Callable[[], float | None] = lambda: None,
        floor: int = 8,
        cap: int | None = None,
    ) -> None:
        if size is not None and size < 1:
            raise ValueError("size must be at least 1")
        if cap is None:
            cap = max_in_flight()
        self._size = size
        self._rate = rate
        self._floor = floor
        self._cap = cap
        self._latency = 0.1
        self._backoff = cap  # lowered by 429s, raised by successes
        self._busy = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def capacity(self) -> int:
        """Requests allowed in flight now."""
        if self._size is not None:
            return self._size
        rate = self._rate()
        want = self._cap if rate is None else math.ceil(rate * self._latency * 2)
        return max(1, min(self._backoff, max(self._floor, min(self._cap, want))))

    @property
    def busy(self) -> int:
        """Requests in flight."""
        return self._busy

    async def acquire(self) -> None:
        """Wait for a slot."""
        if self._busy < self.capacity and not self._waiters:
            self._busy += 1
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self._busy -= 1  # woken and cancelled at once: hand the slot on
                self._wake()
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            raise

    def release(self, seconds: float, status: int | None) -> None:
        """Give a slot back, with how long its request took and its status."""
        self._busy -= 1
        if status is not None:
            self._latency += (seconds - self._latency) * 0.1
        if status == 429:
            self._backoff = max(1, min(self._backoff, self._busy + 1) // 2)
        elif status is not None and self._backoff < self._cap:
            self._backoff += 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._busy < self.capacity:
            fut = self._waiters.popleft()
            if not fut.done():
                self._busy += 1
                fut.set_result(None)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """``headers[name]`` whatever its case (``name`` in lower case): an answer's headers
    (``httpx.Headers``, already case-insensitive) are asked directly, a plain mapping walked."""
    if isinstance(headers, httpx.Headers):
        found: str | None = headers.get(name)
        return found
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _float_header(headers: Mapping[str, str], name: str) -> float | None:
    raw = _header(headers, name)
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = _float_header(headers, name)
    return int(value) if value is not None else None

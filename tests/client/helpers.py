"""Test helpers for the API client: a virtual-time event loop and a fake rate-limited server."""

from __future__ import annotations

import asyncio
import json
import math
import random
import selectors
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from batchpay.client import AntonClient, ApiKey, CallRecord, RateLimiter, RetryPolicy

SECRET = "ak_test_9c3e1f0b7a2d4e6f8a0b1c2d3e4ff00d"
BASE_URL = "https://api.anton.test"
WALL_EPOCH = 1_700_000_000.0


def make_client(
    handler: Callable[[httpx.Request], Any],
    *,
    retry: RetryPolicy | None = None,
    records: list[CallRecord] | None = None,
    rate_limiter: RateLimiter | None = None,
    **kwargs: Any,
) -> AntonClient:
    """A client over ``httpx.MockTransport(handler)`` that never waits unless told to."""
    return AntonClient(
        BASE_URL,
        ApiKey(SECRET),
        transport=httpx.MockTransport(handler),
        retry=retry if retry is not None else RetryPolicy.no_wait(),
        rate_limiter=rate_limiter if rate_limiter is not None else FakeTime().limiter(None),
        on_call=records.append if records is not None else None,
        **kwargs,
    )


def error_response(
    status: int, code: str, message: str = "refused", headers: Mapping[str, str] | None = None
) -> httpx.Response:
    """An answer in the API's error envelope."""
    return httpx.Response(
        status, json={"error": {"code": code, "message": message}}, headers=headers or {}
    )


class SleepRecorder:
    """An injectable sleep that records how long it was asked to wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class FakeTime:
    """A clock that only moves when something sleeps on it; records the sleeps."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.waits: list[float] = []

    def clock(self) -> float:
        """The fake monotonic time."""
        return self.now

    def wall(self) -> float:
        """Unix time matching the fake clock."""
        return WALL_EPOCH + self.now

    async def sleep(self, seconds: float) -> None:
        """Record the wait and move the clock past it."""
        self.waits.append(seconds)
        self.now += seconds

    def limiter(self, limit: int | None = 1000, **kwargs: Any) -> RateLimiter:
        """A RateLimiter running on this fake time."""
        return RateLimiter(
            limit, clock=self.clock, wall_clock=self.wall, sleep=self.sleep, **kwargs
        )


# -- virtual time --------------------------------------------------------------


class _VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0


class _VirtualSelector(selectors.BaseSelector):
    """A selector that never blocks: waiting for ``timeout`` moves the clock by ``timeout``."""

    def __init__(self, clock: _VirtualClock) -> None:
        self._clock = clock
        self._keys: dict[int, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fd] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        return self._keys.pop(fd)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise RuntimeError("virtual time: every task is blocked and nothing is scheduled")
        self._clock.now += max(0.0, timeout)
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._keys

    def close(self) -> None:
        self._keys.clear()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock only moves when every task waits: minutes run in milliseconds."""

    def __init__(self) -> None:
        self._virtual = _VirtualClock()
        super().__init__(_VirtualSelector(self._virtual))

    def time(self) -> float:
        return self._virtual.now


def run_virtual(main: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``main()`` to completion in virtual time and return its result."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main())  # type: ignore[arg-type]


def loop_clock() -> float:
    """The running loop's (virtual) monotonic clock."""
    return asyncio.get_running_loop().time()


def wall_clock() -> float:
    """Unix time matching the running loop's clock."""
    return WALL_EPOCH + asyncio.get_running_loop().time()


# -- a fake rate-limited server --------------------------------------------------


class RollingWindowServer:
    """Counts accepted requests in the last ``window`` seconds, like the Anton API.

    Latency is random per request (uplink and downlink). ``other_rpm`` simulates
    another worker sharing the quota. ``forced_429`` maps request numbers to a
    ``Retry-After`` to answer with regardless of the window.
    """

    def __init__(
        self,
        limit: int = 1000,
        *,
        window: float = 60.0,
        latency: tuple[float, float] = (0.02, 0.25),
        seed: int = 7,
        forced_429: Mapping[int, int] | None = None,
    ) -> None:
        self.limit = limit
        self.window = window
        self.latency = latency
        self.rng = random.Random(seed)
        self.forced_429 = dict(forced_429 or {})
        self.accepted: deque[float] = deque()
        self.arrivals: list[tuple[float, int]] = []  # (time, status) for every request
        self.max_in_window = 0
        self.requests = 0

    def _evict(self, now: float) -> None:
        while self.accepted and self.accepted[0] <= now - self.window:
            self.accepted.popleft()

    def admit(self, now: float) -> tuple[int, dict[str, str]]:
        """Count one request arriving at ``now``; return its status and rate-limit headers."""
        self.requests += 1
        self._evict(now)
        forced = self.forced_429.pop(self.requests, None)
        if forced is not None or len(self.accepted) >= self.limit:
            status = 429
            if forced is not None:
                retry_after = forced
            else:
                retry_after = max(1, math.ceil(self.accepted[0] + self.window - now))
        else:
            status = 200
            self.accepted.append(now)
            self.max_in_window = max(self.max_in_window, len(self.accepted))
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.limit - len(self.accepted))),
            "X-RateLimit-Reset": str(
                math.ceil(WALL_EPOCH + (self.accepted[0] + self.window if self.accepted else now))
            ),
        }
        if status == 429:
            headers["Retry-After"] = str(retry_after)
        self.arrivals.append((now, status))
        return status, headers

    async def handle(self, request: httpx.Request) -> httpx.Response:
        """The MockTransport handler."""
        await asyncio.sleep(self.rng.uniform(*self.latency) / 2)
        status, headers = self.admit(asyncio.get_running_loop().time())
        await asyncio.sleep(self.rng.uniform(*self.latency) / 2)
        if status == 429:
            body: dict[str, Any] = {
                "error": {"code": "rate_limit_exceeded", "message": "Rate limit exceeded."}
            }
        else:
            body = {"id": f"pay_{self.requests}", "status": "created"}
        return httpx.Response(
            status, content=json.dumps(body).encode(), headers=headers, request=request
        )


def window_counts(times: list[float], window: float = 60.0) -> int:
    """The most events inside any half-open window ``(t - window, t]``."""
    times = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best

"""Requests in flight follow the limit: sized from pace × latency, learned from answers."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import pytest

from batchpay.ratelimit import InFlight, Permit, RateLimiter


def test_no_announced_limit_turns_the_pacer_off() -> None:
    """An answer without X-RateLimit headers ends the assumed 1,000/min; a later one restores it."""
    limiter = RateLimiter(1000, learn_unlimited=True)
    assert limiter.rate is not None
    limiter.observe(Permit(1, 0.0), 201, {})
    assert limiter.limit is None and limiter.rate is None
    limiter.observe(Permit(2, 0.0), 200, {"X-RateLimit-Limit": "20000"})
    assert limiter.limit == 20000


def test_unannounced_limit_kept_without_learning_and_on_5xx() -> None:
    """Without learn_unlimited, or on a 5xx (a proxy's answer), the configured limit stays."""
    fixed = RateLimiter(1000)
    fixed.observe(Permit(1, 0.0), 201, {})
    assert fixed.limit == 1000
    learning = RateLimiter(1000, learn_unlimited=True)
    learning.observe(Permit(1, 0.0), 502, {})
    assert learning.limit == 1000


def test_capacity_from_pace_and_latency() -> None:
    """Tier 20 (323/s) at 100 ms wants ~65 in flight; tier 1 keeps the floor; no limit: the cap."""
    rate: list[float | None] = [20000 * 0.97 / 60]
    slots = InFlight(rate=lambda: rate[0], cap=128)
    for _ in range(3):
        asyncio.run(slots.acquire())
    for _ in range(3):
        slots.release(0.1, 201)
    assert 60 <= slots.capacity <= 70
    rate[0] = 1000 * 0.97 / 60
    assert slots.capacity == 8
    rate[0] = None
    assert slots.capacity == 128
    assert InFlight(3).capacity == 3


@pytest.mark.anyio
async def test_a_429_halves_what_is_in_flight_and_successes_grow_it_back() -> None:
    """Unlimited, 40 in flight and a 429: the capacity drops to 20, then climbs one per success."""
    slots = InFlight(cap=128)
    for _ in range(40):
        await slots.acquire()
    slots.release(0.1, 429)
    assert slots.capacity == 20
    for _ in range(5):
        slots.release(0.1, 201)
    assert slots.capacity == 25


@pytest.mark.anyio
async def test_waiters_never_exceed_capacity() -> None:
    """However many tasks wait, no more than the capacity hold a slot at once."""
    slots = InFlight(4)
    peak = 0

    async def one() -> None:
        nonlocal peak
        await slots.acquire()
        peak = max(peak, slots.busy)
        await asyncio.sleep(0)
        slots.release(0.01, 200)

    await asyncio.gather(*(one() for _ in range(50)))
    assert peak == 4 and slots.busy == 0


@pytest.mark.anyio
async def test_client_default_is_not_paced_when_no_limit_is_announced() -> None:
    """The client's default limiter learns "no limit" from the first answer and paces nothing."""
    from batchpay.client import AntonClient
    from batchpay.client.credentials import ApiKey

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": {}})

    key = ApiKey("ak_test_batchpay_sandbox")
    transport = httpx.MockTransport(handler)
    client = AntonClient("https://api.example", key, transport=transport, max_concurrency=None)
    async with client:
        await client.request("GET", "/v1/merchant")
        assert client.rate_limiter.limit is None and client.rate_limiter.rate is None


_AT_LIMITS = """
import resource, sys
from batchpay.client.transport import AiohttpTransport
from batchpay.ratelimit import InFlight, max_in_flight
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
for soft in map(int, sys.argv[1:]):
    if hard != resource.RLIM_INFINITY and soft > hard:
        print("skip")
        continue
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    print(max_in_flight(), InFlight().capacity, InFlight(rate=lambda: 1e9).capacity,
          AiohttpTransport()._limit, AiohttpTransport(limit=10)._limit)
"""


def test_no_more_in_flight_than_the_process_may_open_files() -> None:
    """384 requests (and connections) in flight at most; fewer where few files may be open
    (macOS's default soft limit of 256), so a run never runs out of descriptors for its
    connections, its journal or its report. (In a child: a lowered limit in the test
    process could refuse another thread's file.)"""
    pytest.importorskip("resource")
    done = subprocess.run([sys.executable, "-c", _AT_LIMITS, "2048", "256", "80"],
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    at_2048, at_256, at_80 = done.stdout.strip().splitlines()
    assert at_2048 in ("384 384 384 384 10", "skip")
    assert at_256 == "96 96 96 96 10"
    assert at_80 == "8 8 8 8 10"  # never below the floor

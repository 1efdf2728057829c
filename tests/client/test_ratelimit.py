"""The rate limiter: pacing, learning from headers, 429 pauses, and whole-run simulations."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchpay.client import CallRecord, RateLimiter, RetryPolicy

from .helpers import (
    FakeTime,
    RollingWindowServer,
    loop_clock,
    make_client,
    run_virtual,
    wall_clock,
    window_counts,
)

# -- units on a fake clock -----------------------------------------------------------


async def _grant_times(limiter: RateLimiter, n: int) -> list[float]:
    return [(await limiter.acquire()).granted_at for _ in range(n)]


def _gaps(times: list[float]) -> list[float]:
    return [round(b - a, 9) for a, b in itertools.pairwise(times)]


@pytest.mark.anyio
async def test_pacer_spaces_requests_evenly() -> None:
    """At 60/min with no burst, requests leave exactly one second apart."""
    ft = FakeTime()
    limiter = ft.limiter(60, utilisation=1.0, burst=1)
    times = await _grant_times(limiter, 6)
    assert _gaps(times) == [1.0] * 5


@pytest.mark.anyio
async def test_burst_goes_at_once_then_paces() -> None:
    """A full bucket lets ``burst`` requests go at once; the rest follow at the steady pace."""
    ft = FakeTime()
    limiter = ft.limiter(120, utilisation=1.0, burst=4)
    times = await _grant_times(limiter, 7)
    assert _gaps(times) == [0.0, 0.0, 0.0, 0.5, 0.5, 0.5]


@pytest.mark.anyio
async def test_default_pace_is_97_percent_of_the_limit() -> None:
    """By default 1,000/min paces at 970/min after the initial burst."""
    limiter = FakeTime().limiter(1000)
    assert limiter.rate == pytest.approx(1000 * 0.97 / 60)
    times = await _grant_times(limiter, 200)
    steady = _gaps(times)[-50:]
    assert steady == pytest.approx([60 / 970] * 50)


@pytest.mark.anyio
async def test_learns_a_lower_limit_from_headers() -> None:
    """X-RateLimit-Limit replaces the configured limit and slows the pace at once."""
    ft = FakeTime()
    limiter = ft.limiter(1000, utilisation=1.0, burst=1)
    permit = await limiter.acquire()
    limiter.observe(permit, 200, {"X-RateLimit-Limit": "120", "X-RateLimit-Remaining": "119"})
    assert limiter.limit == 120
    times = await _grant_times(limiter, 4)
    assert _gaps(times) == [0.5, 0.5, 0.5]


@pytest.mark.anyio
async def test_learns_a_higher_limit_from_headers() -> None:
    """A promoted tier announced in the headers raises the pace."""
    limiter = FakeTime().limiter(1000)
    permit = await limiter.acquire()
    limiter.observe(permit, 200, {"x-ratelimit-limit": "5000"})
    assert limiter.limit == 5000
    assert limiter.rate == pytest.approx(5000 * 0.97 / 60)


@pytest.mark.anyio
async def test_exhausted_remaining_waits_for_reset() -> None:
    """Remaining 0 with a reset 10 s away holds the next request until then."""
    ft = FakeTime()
    limiter = ft.limiter(1000)
    permit = await limiter.acquire()
    limiter.observe(
        permit,
        200,
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(ft.wall()) + 10)},
    )
    before = ft.now
    after = (await limiter.acquire()).granted_at
    assert after - before == pytest.approx(10.0, abs=1.0)


@pytest.mark.anyio
async def test_remaining_counts_requests_sent_after_the_answer() -> None:
    """Requests sent after the one answered are taken off its Remaining."""
    ft = FakeTime()
    limiter = ft.limiter(1000, burst=10)
    first = await limiter.acquire()
    for _ in range(3):
        await limiter.acquire()  # three more leave before the first answer arrives
    reset = str(int(ft.wall()) + 30)
    limiter.observe(first, 200, {"X-RateLimit-Remaining": "3", "X-RateLimit-Reset": reset})
    before = ft.now
    await limiter.acquire()
    assert ft.now - before == pytest.approx(30.0, abs=1.0)


@pytest.mark.anyio
async def test_stale_answer_does_not_override_a_newer_one() -> None:
    """An answer to an older request, arriving late, does not overwrite fresher information."""
    ft = FakeTime()
    limiter = ft.limiter(1000)
    old, new = await limiter.acquire(), await limiter.acquire()
    limiter.observe(new, 200, {"X-RateLimit-Remaining": "500", "X-RateLimit-Limit": "1000"})
    reset = str(int(ft.wall()) + 40)
    limiter.observe(old, 200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Limit": "10"})
    limiter.observe(old, 200, {"X-RateLimit-Reset": reset})
    before = ft.now
    await limiter.acquire()
    assert ft.now - before < 1.0
    assert limiter.limit == 1000


@pytest.mark.anyio
async def test_429_retry_after_pauses_every_caller() -> None:
    """After a 429 with Retry-After: 5, no caller gets a permit for five seconds."""
    ft = FakeTime()
    limiter = ft.limiter(1000)
    permit = await limiter.acquire()
    limiter.observe(permit, 429, {"Retry-After": "5"})
    start = ft.now
    permits = await asyncio.gather(*(limiter.acquire() for _ in range(6)))
    assert min(p.granted_at for p in permits) >= start + 5.0
    assert limiter.throttled == 1
    # No burst after the pause: the six leave at the steady pace.
    assert _gaps(sorted(p.granted_at for p in permits)) == pytest.approx([60 / 970] * 5)


@pytest.mark.anyio
async def test_429_without_retry_after_uses_reset() -> None:
    """A 429 without Retry-After pauses until X-RateLimit-Reset."""
    ft = FakeTime()
    limiter = ft.limiter(1000)
    permit = await limiter.acquire()
    limiter.observe(permit, 429, {"X-RateLimit-Reset": str(int(ft.wall()) + 8)})
    before = ft.now
    await limiter.acquire()
    assert ft.now - before == pytest.approx(8.0, abs=1.0)


@pytest.mark.anyio
async def test_reset_far_in_the_future_is_capped_at_one_window() -> None:
    """A server clock far ahead cannot stall the client for more than one window."""
    ft = FakeTime()
    limiter = ft.limiter(1000)
    permit = await limiter.acquire()
    far = str(int(ft.wall()) + 86_400)
    limiter.observe(permit, 200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": far})
    before = ft.now
    await limiter.acquire()
    assert ft.now - before <= 60.0 + 60 / 970 + 1e-6  # one window, then one steady step


@pytest.mark.anyio
async def test_garbage_headers_are_ignored() -> None:
    """Unparseable or negative rate-limit headers change nothing."""
    limiter = FakeTime().limiter(1000)
    permit = await limiter.acquire()
    limiter.observe(
        permit,
        200,
        {"X-RateLimit-Limit": "lots", "X-RateLimit-Remaining": "-3", "X-RateLimit-Reset": "nan"},
    )
    assert limiter.limit == 1000


@pytest.mark.anyio
async def test_unlimited_limiter_never_waits() -> None:
    """With no known limit, a thousand permits are granted without any wait."""
    ft = FakeTime()
    limiter = ft.limiter(None)
    await _grant_times(limiter, 1000)
    assert ft.waits == [] and limiter.granted == 1000


@pytest.mark.anyio
async def test_testing_mode_grants_at_once(testing_mode: None) -> None:
    """Under set_testing(True) a limiter with the default sleep does not wait."""
    limiter = RateLimiter(1, burst=1)
    started = time.perf_counter()
    for _ in range(5):
        await limiter.acquire()
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    "kwargs",
    [{"limit_per_minute": 0}, {"utilisation": 0.0}, {"utilisation": 1.5}, {"burst": 0}],
)
def test_limiter_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    """A limiter with a zero limit, burst or utilisation outside (0, 1] is refused."""
    with pytest.raises(ValueError):
        RateLimiter(**kwargs)


# -- the guarantee ---------------------------------------------------------------


@settings(max_examples=120, deadline=None)
@given(
    limit=st.integers(1, 40),
    burst=st.none() | st.integers(1, 80),
    utilisation=st.floats(0.3, 1.0),
    arrivals=st.lists(
        st.tuples(
            st.floats(0.0, 8.0),  # gap before the caller asks
            st.integers(0, 3),  # how many callers ask at that moment
            st.none() | st.integers(0, 60),  # Remaining in the answer
            st.none() | st.integers(-5, 90),  # Reset, seconds from now
            st.booleans(),  # answered 429?
        ),
        min_size=1,
        max_size=60,
    ),
)
def test_never_more_than_limit_in_any_window(
    limit: int,
    burst: int | None,
    utilisation: float,
    arrivals: list[tuple[float, int, int | None, int | None, bool]],
) -> None:
    """Whatever the traffic and headers, a known limit is never exceeded in any 60 s window."""

    async def main() -> list[float]:
        limiter = RateLimiter(
            limit,
            burst=burst,
            utilisation=utilisation,
            clock=loop_clock,
            wall_clock=wall_clock,
            sleep=asyncio.sleep,
        )
        granted: list[float] = []

        async def caller(remaining: int | None, reset: int | None, throttled: bool) -> None:
            permit = await limiter.acquire()
            granted.append(permit.granted_at)
            await asyncio.sleep(0.1)
            headers = {"X-RateLimit-Limit": str(limit)}
            if remaining is not None:
                headers["X-RateLimit-Remaining"] = str(remaining)
            if reset is not None:
                headers["X-RateLimit-Reset"] = str(int(wall_clock()) + reset)
            limiter.observe(permit, 429 if throttled else 200, headers)

        tasks = []
        for gap, count, remaining, reset, throttled in arrivals:
            await asyncio.sleep(gap)
            tasks += [
                asyncio.create_task(caller(remaining, reset, throttled)) for _ in range(count)
            ]
        await asyncio.gather(*tasks)
        return granted

    granted = run_virtual(main)
    assert len(granted) == sum(a[1] for a in arrivals)
    assert window_counts(granted) <= limit


# -- whole runs in simulated time -------------------------------------------------


@dataclass
class Run:
    """What one simulated run did."""

    server: RollingWindowServer
    records: list[CallRecord] = field(default_factory=list)
    ours_ok: int = 0

    @property
    def ours_429(self) -> int:
        """429 answers our client received."""
        return sum(1 for r in self.records if r.status == 429)

    @property
    def share_429(self) -> float:
        """Share of our attempts answered 429."""
        return self.ours_429 / len(self.records)

    def accepted_between(self, start: float, end: float) -> int:
        """Requests (anyone's) the server accepted in [start, end)."""
        return sum(1 for t, s in self.server.arrivals if start <= t < end and s != 429)


def simulate(
    server: RollingWindowServer,
    *,
    minutes: float = 3.0,
    configured_limit: int = 1000,
    workers: int = 16,
    other_rpm: int = 0,
    limit_change: tuple[float, int] | None = None,
) -> Run:
    """Run ``workers`` tasks creating payouts through one client for ``minutes`` of virtual time."""
    run = Run(server)
    duration = minutes * 60.0

    async def main() -> None:
        limiter = RateLimiter(
            configured_limit, clock=loop_clock, wall_clock=wall_clock, sleep=asyncio.sleep
        )
        client = make_client(
            server.handle,
            retry=RetryPolicy(max_attempts=10, sleep=asyncio.sleep),
            rate_limiter=limiter,
            records=run.records,
        )

        async def worker(i: int) -> None:
            n = 0
            while loop_clock() < duration:
                n += 1
                await client.create_payout({"reference": f"R-{i}-{n}"}, f"key-{i}-{n}")
                run.ours_ok += 1

        async def other_worker() -> None:  # a second process sharing the merchant's quota
            while loop_clock() < duration:
                server.admit(loop_clock())
                await asyncio.sleep(60.0 / other_rpm)

        async def change_limit(at: float, limit: int) -> None:
            await asyncio.sleep(at)
            server.limit = limit

        jobs: list[Any] = [worker(i) for i in range(workers)]
        if other_rpm:
            jobs.append(other_worker())
        if limit_change:
            jobs.append(change_limit(*limit_change))
        async with client:
            await asyncio.gather(*jobs)

    run_virtual(main)
    return run


def test_fills_1000_per_minute_without_tripping_it() -> None:
    """Against 1,000/min for 3 minutes: ≥ 95 % of the limit used, ≤ 1 % answered 429."""
    run = simulate(RollingWindowServer(1000))
    utilisation = run.accepted_between(0, 180) / 3000
    assert utilisation >= 0.95, utilisation
    assert run.share_429 <= 0.01
    assert run.server.max_in_window <= 1000


def test_learns_a_lower_limit_from_the_first_answers() -> None:
    """Configured for 1,000/min against a 600/min server: ≥ 95 % of 600 used, ≤ 1 % 429s."""
    run = simulate(RollingWindowServer(600))
    assert run.accepted_between(0, 180) / 1800 >= 0.95
    assert run.share_429 <= 0.01


def test_adapts_when_the_limit_drops_mid_run() -> None:
    """A tier cut from 1,000 to 500/min mid-run costs ≤ 1 % 429s; 500/min is still filled."""
    run = simulate(RollingWindowServer(1000), minutes=4, limit_change=(60.0, 500))
    assert run.share_429 <= 0.01
    assert run.accepted_between(180, 240) >= 0.95 * 500


def test_shares_the_quota_with_another_worker() -> None:
    """With another process using 300/min of the quota, the two together fill it with few 429s."""
    run = simulate(RollingWindowServer(1000), other_rpm=300)
    assert run.share_429 <= 0.01
    assert run.accepted_between(60, 180) / 2000 >= 0.95


def test_retry_after_pauses_every_caller() -> None:
    """A lone 429 with Retry-After: 5 stops all traffic for five seconds, then pacing resumes."""
    server = RollingWindowServer(1000, forced_429={500: 5})
    run = simulate(server)
    (t429,) = [t for t, status in server.arrivals if status == 429]
    # Requests already on the wire when the 429 left the server may still arrive (≤ 0.25 s).
    during = [t for t, _ in server.arrivals if t429 + 0.25 < t < t429 + 5.0]
    assert during == []
    assert run.ours_429 == 1
    assert run.accepted_between(0, 180) / 3000 >= 0.94  # 5 s of 180 s lost, no more


def test_concurrency_is_capped() -> None:
    """No more than max_concurrency requests are in flight at once, however many tasks call."""
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return httpx.Response(200, json={"id": "pay_1"})

    async def main() -> None:
        client = make_client(handler, max_concurrency=3)
        async with client:
            await asyncio.gather(*(client.get_payout("pay_1") for _ in range(20)))

    run_virtual(main)
    assert peak == 3


def test_rate_limit_headers_are_read_whatever_their_case() -> None:
    """An answer's headers (``httpx.Headers``) and a plain mapping give the same values."""
    import httpx

    from batchpay.ratelimit import _header, _int_header

    answer = httpx.Headers({"X-RateLimit-Limit": "20000", "X-RATELIMIT-REMAINING": "7"})
    plain = {"X-RateLimit-Limit": "20000", "x-ratelimit-remaining": "7"}
    for headers in (answer, plain):
        assert _int_header(headers, "x-ratelimit-limit") == 20000
        assert _int_header(headers, "x-ratelimit-remaining") == 7
        assert _header(headers, "retry-after") is None

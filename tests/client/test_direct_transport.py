"""Over a real socket with an API key, requests go straight to the aiohttp transport: the
same request on the wire as httpx's client would send, the same answers and errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from batchpay.client import AntonClient, ApiKey, RetryPolicy
from batchpay.errors import TransportError, UnprocessableError

pytestmark = pytest.mark.anyio
KEY = "ak_test_" + "d" * 32


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[dict[str, Any]], list[str]]]:
    """A tiny HTTP server recording each request; it answers as told by ``plan``."""
    seen: list[dict[str, Any]] = []
    plan: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append({"method": request.method, "path": request.path_qs,
                     "headers": dict(request.headers), "body": await request.read()})  # fmt: skip
        what = plan.pop(0) if plan else "ok"
        if what == "503":
            return web.json_response({"error": {"code": "internal_error"}}, status=503)
        if what == "422":
            body = {"error": {"code": "invalid_amount", "message": f"no {KEY}"}}
            return web.json_response(body, status=422)
        if what == "cut":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        payout = {"id": "pay_1", "status": "pending", "dest_amount": "12.30"}
        if request.method == "GET":
            return web.json_response({"data": [payout], "has_more": False})
        return web.json_response({"data": payout}, status=201, headers={"X-Request-ID": "req_srv"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen, plan
    await runner.cleanup()


async def test_a_payout_leaves_with_every_header_and_its_exact_body(server: Any) -> None:
    """Bearer key, idempotency key, request id, JSON type, user agent; the answer unwrapped
    with its amount a decimal string; no request goes through httpx's client."""
    url, seen, _ = server
    async with AntonClient(url + "/", ApiKey(KEY)) as client:
        assert client._direct is not None
        result = await client.create_payout({"reference": "R1", "dest_amount": "12.30"}, "k-1")
        found = [p async for p in client.iter_payouts(status=["pending", "sent"], reference="R1")]
    assert result.data["id"] == "pay_1" and result.data["dest_amount"] == "12.30"
    assert result.request_id == "req_srv" and result.status == 201
    post = seen[0]
    assert post["method"] == "POST" and post["path"] == "/v1/payouts"
    h = post["headers"]
    assert h["Authorization"] == f"Bearer {KEY}" and h["Idempotency-Key"] == "k-1"
    assert h["Content-Type"] == "application/json" and h["User-Agent"].startswith("batchpay/")
    assert h["X-Request-ID"].startswith("req_") and h["Accept"] == "application/json"
    assert json.loads(post["body"]) == {"reference": "R1", "dest_amount": "12.30"}
    assert seen[1]["path"] == "/v1/payouts?reference=R1&status=pending&status=sent&limit=100"
    assert [p["id"] for p in found] == ["pay_1"]


async def test_errors_retries_and_lost_answers_map_as_before(server: Any) -> None:
    """A 503 is retried with the same key and body; a 422 is the API's refusal, its echoed
    key redacted; a connection cut mid-answer is a TransportError of unknown outcome."""
    url, seen, plan = server
    async with AntonClient(url, ApiKey(KEY), retry=RetryPolicy.no_wait(max_attempts=3)) as c:
        plan[:] = ["503", "ok"]
        again = await c.create_payout({"reference": "R2"}, "k-2")
        assert again.attempts == 2
        assert seen[0]["body"] == seen[1]["body"]
        assert seen[0]["headers"]["Idempotency-Key"] == seen[1]["headers"]["Idempotency-Key"]
        plan[:] = ["422"]
        with pytest.raises(UnprocessableError) as refused:
            await c.create_payout({"reference": "R3"}, "k-3")
        assert KEY not in str(refused.value)
        plan[:] = ["cut", "cut", "cut"]
        with pytest.raises(TransportError) as lost:
            await c.create_payout({"reference": "R4"}, "k-4")
        assert lost.value.sent is None  # it may have arrived: settle with the same key

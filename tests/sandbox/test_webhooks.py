"""Webhook subscriptions and signed, retried delivery on the sandbox clock."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from batchpay.sandbox import Sandbox, SandboxConfig, sign_webhook, verify_webhook

from .helpers import error_code, fields, make_payee, payout, post

pytestmark = pytest.mark.anyio


class Receiver:
    """A fake webhook endpoint: records requests, answers with scripted statuses."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.statuses: list[int] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0) if self.statuses else 200
        return httpx.Response(status, text="ok")

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


@pytest.fixture
def receiver() -> Receiver:
    """The fake receiving endpoint."""
    return Receiver()


@pytest.fixture
async def hooked(receiver: Receiver) -> AsyncIterator[Sandbox]:
    """A manual-clock sandbox whose webhook deliveries go to ``receiver``."""
    config = SandboxConfig(
        manual_clock=True, webhook_transport=httpx.MockTransport(receiver.handler)
    )
    sb = Sandbox(config)
    yield sb
    await sb.aclose()


async def _subscribe(client: httpx.AsyncClient, events: list[str]) -> dict[str, Any]:
    response = await post(
        client, "/v1/webhooks", {"url": "http://127.0.0.1:9/hooks", "events": events}
    )
    assert response.status_code == 201, response.text
    sub: dict[str, Any] = response.json()
    return sub


async def test_subscription_create_list_get(client: httpx.AsyncClient) -> None:
    """Create returns the one-time secret; list and get never show it."""
    sub = await _subscribe(client, ["payout.completed"])
    assert sub["secret"].startswith("whsec_") and len(sub["secret"]) == 6 + 64
    listed = (await client.get("/v1/webhooks")).json()["data"]
    assert [s["id"] for s in listed] == [sub["id"]]
    assert "secret" not in listed[0]
    fetched = (await client.get(f"/v1/webhooks/{sub['id']}")).json()
    assert "secret" not in fetched and fetched["status"] == "active"
    missing = await client.get("/v1/webhooks/wbh_nope")
    assert error_code(missing) == "webhook_subscription_not_found"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"events": ["payout.completed"]}, "webhook_url_required"),
        ({"url": "not a url", "events": ["payout.completed"]}, "webhook_url_invalid"),
        ({"url": "ftp://example.com/x", "events": ["payout.completed"]}, "webhook_url_not_https"),
    ],
)
async def test_subscription_url_errors(
    client: httpx.AsyncClient, body: dict[str, Any], code: str
) -> None:
    """Missing, malformed and non-HTTP URLs get the documented 400 codes."""
    response = await post(client, "/v1/webhooks", body)
    assert response.status_code == 400 and error_code(response) == code


async def test_subscription_event_types_are_checked(client: httpx.AsyncClient) -> None:
    """Unknown event types are a validation error naming the array index."""
    response = await post(
        client, "/v1/webhooks", {"url": "https://x.example", "events": ["payout.done"]}
    )
    assert response.status_code == 422 and fields(response) == ["events.0"]


async def test_strict_url_rules_can_be_switched_on() -> None:
    """With insecure URLs disallowed, http:// and loopback are refused as in production."""
    config = SandboxConfig(manual_clock=True, webhook_allow_insecure_urls=False)
    async with Sandbox(config) as sb, sb.client() as client:
        plain = await post(
            client, "/v1/webhooks", {"url": "http://example.com/h", "events": ["test"]}
        )
        loop = await post(
            client, "/v1/webhooks", {"url": "https://127.0.0.1/h", "events": ["test"]}
        )
    assert error_code(plain) == "webhook_url_not_https"
    assert error_code(loop) == "webhook_url_private_address"


async def test_deliveries_are_signed_per_the_docs(hooked: Sandbox, receiver: Receiver) -> None:
    """Each transition is delivered with a v1 HMAC over '{timestamp}.{body}' and the headers."""
    async with hooked.client() as client:
        sub = await _subscribe(client, ["*"])
        ben, ins = await make_payee(client)
        pay = (await post(client, "/v1/payouts", payout(ben, ins))).json()
        await hooked.advance(10)
    types = [e["type"] for e in receiver.events()]
    assert types == [
        "beneficiary.created",
        "instrument.created",
        "payout.created",
        "payout.approved",
        "payout.processing",
        "payout.sent",
        "payout.completed",
    ]
    last = receiver.requests[-1]
    assert receiver.events()[-1]["data"]["id"] == pay["id"]
    assert last.headers["x-webhook-event"] == "payout.completed"
    assert last.headers["x-webhook-id"] == receiver.events()[-1]["id"]
    assert last.headers["user-agent"] == "AntonPayments-Webhook/1.0"
    timestamp = last.headers["x-webhook-timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    expected = sign_webhook(sub["secret"], int(timestamp), last.content)
    assert last.headers["x-webhook-signature"] == f"v1={expected}"
    assert verify_webhook(
        sub["secret"], last.headers["x-webhook-signature"], timestamp, last.content
    )
    assert not verify_webhook(
        "whsec_" + "0" * 64, last.headers["x-webhook-signature"], timestamp, last.content
    )


async def test_compact_payload_for_blocks(hooked: Sandbox, receiver: Receiver) -> None:
    """screening_failed is announced with the compact id/status/reason payload."""
    async with hooked.client() as client:
        await _subscribe(client, ["payout.screening_failed"])
        ben, ins = await make_payee(client)
        pay = (await post(client, "/v1/payouts", payout(ben, ins, "3.93"))).json()
        await hooked.advance(10)
    [event] = receiver.events()
    assert event["data"] == {
        "id": pay["id"],
        "merchant_id": pay["merchant_id"],
        "status": "screening_failed",
        "reason": "compliance screening flagged this payout",
    }


async def test_failed_deliveries_retry_on_schedule_then_abandon(
    hooked: Sandbox, receiver: Receiver
) -> None:
    """Non-2xx answers are retried after 30 s, 2, 8, 32 min; after 5 attempts they stop."""
    receiver.statuses = [500] * 10
    async with hooked.client() as client:
        await _subscribe(client, ["beneficiary.created"])
        from .helpers import individual

        await post(client, "/v1/beneficiaries", individual())
    await hooked.tick()
    assert len(receiver.requests) == 1
    for wait, expected in [(29, 1), (1, 2), (119, 2), (1, 3), (480, 4), (1920, 5), (7200, 5)]:
        await hooked.advance(wait)
        assert len(receiver.requests) == expected, wait
    [delivery] = hooked.deliveries()
    assert delivery["status"] == "abandoned" and delivery["attempts"] == 5
    assert delivery["response_status"] == 500
    same_body = {r.content for r in receiver.requests}
    assert len(same_body) == 1


async def test_retry_succeeds_after_receiver_recovers(hooked: Sandbox, receiver: Receiver) -> None:
    """A delivery that fails once succeeds on its retry and is marked success."""
    receiver.statuses = [503]
    async with hooked.client() as client:
        await _subscribe(client, ["beneficiary.created"])
        from .helpers import individual

        await post(client, "/v1/beneficiaries", individual())
    await hooked.tick()
    await hooked.advance(30)
    [delivery] = hooked.deliveries()
    assert delivery["status"] == "success" and delivery["attempts"] == 2
    admin = [d["status"] for d in hooked.deliveries()]
    assert admin == ["success"]


async def test_unreachable_receiver_counts_as_failure(hooked: Sandbox) -> None:
    """A transport error is a failed attempt with its error recorded."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    hooked._rt.deliverer._transport = httpx.MockTransport(refuse)
    async with hooked.client() as client:
        await _subscribe(client, ["beneficiary.created"])
        from .helpers import individual

        await post(client, "/v1/beneficiaries", individual())
    await hooked.tick()
    [delivery] = hooked.deliveries()
    assert delivery["status"] == "pending" and "ConnectError" in delivery["error"]


async def test_rotation_signs_with_both_secrets_during_grace(
    hooked: Sandbox, receiver: Receiver
) -> None:
    """After rotation deliveries carry two v1= entries until the 24 h grace ends."""
    from .helpers import individual

    async with hooked.client() as client:
        sub = await _subscribe(client, ["beneficiary.created"])
        rotated = await client.post(f"/v1/webhooks/{sub['id']}/secret/rotate")
        new_secret = rotated.json()["secret"]
        assert new_secret != sub["secret"]
        await post(client, "/v1/beneficiaries", individual())
        await hooked.tick()
        await hooked.advance(24 * 3600 + 1)
        await post(client, "/v1/beneficiaries", individual())
        await hooked.tick()
    during, after = receiver.requests
    ts = during.headers["x-webhook-timestamp"]
    header = during.headers["x-webhook-signature"]
    assert header.count("v1=") == 2
    assert verify_webhook(sub["secret"], header, ts, during.content)
    assert verify_webhook(new_secret, header, ts, during.content)
    assert after.headers["x-webhook-signature"].count("v1=") == 1

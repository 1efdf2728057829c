"""Idempotency: required keys, replay, conflict, in-flight, retention on the sandbox clock."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from batchpay.sandbox import Sandbox

from .helpers import error_code, individual, payout, post

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "path",
    ["/v1/beneficiaries", "/v1/payouts", "/v1/webhooks", "/v1/payouts/pay_x/cancel"],
)
async def test_creating_posts_require_a_key(client: httpx.AsyncClient, path: str) -> None:
    """Creating POSTs without Idempotency-Key answer 400 missing_idempotency_key."""
    response = await client.post(path, json={})
    assert response.status_code == 400
    assert error_code(response) == "missing_idempotency_key"


async def test_replay_returns_original_status_and_body(
    sandbox: Sandbox, client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """Same key and body replays the first answer with X-Idempotent-Replayed: true."""
    body = payout(*payee)
    first = await post(client, "/v1/payouts", body, key="pay-1")
    await sandbox.advance(30)
    second = await post(client, "/v1/payouts", body, key="pay-1")
    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert second.headers["x-idempotent-replayed"] == "true"
    assert "x-idempotent-replayed" not in first.headers
    assert second.headers["x-request-id"] != first.headers["x-request-id"]
    assert len(sandbox.ledger()) == 1


async def test_replay_ignores_json_formatting(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    """The same JSON sent with other spacing and key order counts as the same body."""
    body = individual()
    first = await post(client, "/v1/beneficiaries", body, key="ben-1")
    import json

    text = json.dumps(dict(reversed(list(body.items()))), indent=2)
    second = await client.post(
        "/v1/beneficiaries",
        content=text,
        headers={"Idempotency-Key": "ben-1", "Content-Type": "application/json"},
    )
    assert second.status_code == 201
    assert second.json()["id"] == first.json()["id"]


async def test_same_key_other_body_is_conflict(
    client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """Same key with a different body answers 409 idempotency_conflict."""
    await post(client, "/v1/payouts", payout(*payee, "10.00"), key="k")
    response = await post(client, "/v1/payouts", payout(*payee, "11.00"), key="k")
    assert response.status_code == 409 and error_code(response) == "idempotency_conflict"
    other_path = await post(client, "/v1/beneficiaries", individual(), key="k")
    assert error_code(other_path) == "idempotency_conflict"


async def test_same_key_while_first_runs_is_in_flight(
    sandbox: Sandbox, client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """A retry while the first request still runs answers 409 idempotency_in_flight."""
    body = payout(*payee)
    slow = asyncio.create_task(
        post(client, "/v1/payouts", body, key="slow", headers={"X-Sandbox-Fault": "latency=300"})
    )
    await asyncio.sleep(0.05)
    during = await post(client, "/v1/payouts", body, key="slow")
    first = await slow
    after = await post(client, "/v1/payouts", body, key="slow")
    assert during.status_code == 409 and error_code(during) == "idempotency_in_flight"
    assert first.status_code == 201
    assert after.headers["x-idempotent-replayed"] == "true"
    assert len(sandbox.ledger()) == 1


async def test_keys_expire_after_24_hours(
    sandbox: Sandbox, client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """After 24 sandbox hours the key is forgotten and the same request pays again."""
    body = payout(*payee)
    await post(client, "/v1/payouts", body, key="old")
    await sandbox.advance(24 * 3600 - 1)
    replay = await post(client, "/v1/payouts", body, key="old")
    assert replay.headers.get("x-idempotent-replayed") == "true"
    await sandbox.advance(2)
    fresh = await post(client, "/v1/payouts", body, key="old")
    assert fresh.status_code == 201 and "x-idempotent-replayed" not in fresh.headers
    assert len(sandbox.ledger()) == 2


async def test_expired_keys_are_swept_from_storage(
    sandbox: Sandbox, client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """Keys past their 24 hours are deleted by a later request's sweep, not kept forever."""

    def stored() -> int:
        row = sandbox._rt.store.one("SELECT COUNT(*) AS n FROM idempotency")
        assert row is not None
        return int(row["n"])

    for n in range(3):
        await post(client, "/v1/payouts", payout(*payee), key=f"old-{n}")
    assert stored() >= 3
    await sandbox.advance(24 * 3600 + 120)
    await post(client, "/v1/payouts", payout(*payee), key="new")
    assert stored() == 1  # every earlier key (the payee's too) is past its window


async def test_business_refusals_are_replayed(
    sandbox: Sandbox, client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """A 4xx answer from the handler is stored: the retry replays it even if state changed."""
    sandbox.set_balance("GBP", "1.00")
    body = payout(*payee, "50.00")
    refused = await post(client, "/v1/payouts", body, key="poor")
    sandbox.set_balance("GBP", "1000.00")
    again = await post(client, "/v1/payouts", body, key="poor")
    assert refused.status_code == again.status_code == 422
    assert again.headers["x-idempotent-replayed"] == "true"


async def test_server_errors_release_the_key(
    sandbox: Sandbox,
    client: httpx.AsyncClient,
    payee: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 500 from the handler is not stored: the retry with the same key runs again."""
    body = payout(*payee)
    real = sandbox._rt.bank.create_payout

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("db down")

    monkeypatch.setattr(sandbox._rt.bank, "create_payout", broken)
    failed = await post(client, "/v1/payouts", body, key="retry-me")
    assert failed.status_code == 500
    monkeypatch.setattr(sandbox._rt.bank, "create_payout", real)
    ok = await post(client, "/v1/payouts", body, key="retry-me")
    assert ok.status_code == 201 and "x-idempotent-replayed" not in ok.headers


async def test_overlong_key_is_refused(client: httpx.AsyncClient) -> None:
    """Keys longer than 255 characters are refused before anything runs."""
    response = await post(client, "/v1/beneficiaries", individual(), key="k" * 256)
    assert response.status_code == 400 and error_code(response) == "invalid_idempotency_key"


async def test_body_cut_off_by_a_dying_client_is_not_processed(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    """A client killed mid-body leaves no trace: the key stays free, nothing is created."""
    import json

    body = json.dumps(individual()).encode()
    messages = [
        {"type": "http.request", "body": body[:20], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return messages.pop(0)

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/beneficiaries", "raw_path": b"/v1/beneficiaries",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
        "server": ("sandbox", 80),
        "headers": [(b"authorization", b"Bearer ak_test_batchpay_sandbox"),
                    (b"idempotency-key", b"ben-cut"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip
    await sandbox.app(scope, receive, send)
    assert sent == []
    whole = await client.post(
        "/v1/beneficiaries",
        content=body,
        headers={"Idempotency-Key": "ben-cut", "Content-Type": "application/json"},
    )
    assert whole.status_code == 201
    assert "x-idempotent-replayed" not in whole.headers

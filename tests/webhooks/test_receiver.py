"""The receiver app: verify, record durably, then answer; the sender retries anything else."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from batchpay.errors import ConfigError
from batchpay.webhooks import create_receiver

from .helpers import (
    KNOWN_PAYOUT,
    NOW,
    OTHER_SECRET,
    SECRET,
    delivery,
    envelope,
    payout_status,
    webhook_events,
)

pytestmark = pytest.mark.anyio


async def _post(client: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/webhooks/anton", content=body, headers=headers)


async def test_valid_delivery_is_recorded_before_the_2xx(
    receiver: httpx.AsyncClient, journal_path: Path
) -> None:
    """A 200 means the status is already committed: another connection sees it at once."""
    response = await _post(receiver, *delivery(envelope(status="completed")))
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert payout_status(journal_path)[0] == "completed"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: delivery(envelope(), [OTHER_SECRET]), "bad_signature"),
        (lambda: delivery(envelope(), timestamp=NOW - 301), "stale_timestamp"),
        (lambda: delivery(envelope(), timestamp=NOW + 301), "stale_timestamp"),
        (lambda: delivery(envelope(), X_Webhook_Signature=None), "missing_signature"),
        (lambda: delivery(envelope(), X_Webhook_Timestamp=None), "missing_timestamp"),
        (lambda: delivery(envelope(), X_Webhook_ID=None), "missing_event_id"),
        (lambda: delivery(envelope(), X_Webhook_Signature="v1=zz,v2=11"), "malformed_signature"),
    ],
)
async def test_refused_delivery_is_400_and_records_nothing(
    receiver: httpx.AsyncClient, journal_path: Path, make: object, reason: str
) -> None:
    """Forged, stale, unsigned or garbled deliveries get 400 with a reason and touch nothing."""
    body, headers = make()  # type: ignore[operator]
    response = await _post(receiver, body, headers)
    assert (response.status_code, response.json()) == (400, {"error": reason})
    assert webhook_events(journal_path) == []
    assert payout_status(journal_path)[0] == "created"


async def test_tampered_body_is_400(receiver: httpx.AsyncClient, journal_path: Path) -> None:
    """A body changed in transit (failed → completed) is refused; the status stays put."""
    body, headers = delivery(envelope(status="failed"))
    response = await _post(receiver, body.replace(b"failed", b"completed"), headers)
    assert response.status_code == 400 and response.json() == {"error": "bad_signature"}
    assert payout_status(journal_path)[0] == "created"


async def test_replayed_event_id_is_200_duplicate_and_recorded_once(
    receiver: httpx.AsyncClient, journal_path: Path
) -> None:
    """At-least-once delivery: the second copy is acknowledged as a duplicate, kept once."""
    body, headers = delivery(envelope(event_id="evt_dup"))
    first = await _post(receiver, body, headers)
    second = await _post(receiver, body, headers)
    assert first.json() == {"status": "ok"} and second.json() == {"status": "duplicate"}
    assert second.status_code == 200
    assert webhook_events(journal_path) == [("evt_dup", KNOWN_PAYOUT, "completed")]


async def test_rotation_on_the_wire(receiver: httpx.AsyncClient, journal_path: Path) -> None:
    """A grace-window delivery with two v1= entries, only the second ours, is accepted."""
    response = await _post(receiver, *delivery(envelope(), [OTHER_SECRET, SECRET]))
    assert response.json() == {"status": "ok"}
    assert payout_status(journal_path)[0] == "completed"


async def test_receiver_holding_two_secrets(journal_path: Path) -> None:
    """A receiver configured with old and new secrets accepts either, and nothing else."""
    app = create_receiver(journal_path, [SECRET, OTHER_SECRET], clock=lambda: float(NOW))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as c:
        old = await _post(c, *delivery(envelope(status="sent", event_id="e1"), [SECRET]))
        new = await _post(c, *delivery(envelope(event_id="e2"), [OTHER_SECRET]))
        other = await _post(c, *delivery(envelope(event_id="e3"), ["whsec_" + "f" * 64]))
    assert [old.status_code, new.status_code, other.status_code] == [200, 200, 400]
    assert [e[0] for e in webhook_events(journal_path)] == ["e1", "e2"]


async def test_out_of_order_deliveries_end_completed(
    receiver: httpx.AsyncClient, journal_path: Path
) -> None:
    """payout.completed, then a late payout.sent: both acknowledged, the status stays completed."""
    done = await _post(receiver, *delivery(envelope(status="completed", event_id="evt_5")))
    late = await _post(receiver, *delivery(envelope(status="sent", event_id="evt_4")))
    assert done.json() == late.json() == {"status": "ok"}
    assert payout_status(journal_path)[0] == "completed"


async def test_unwritable_journal_is_500_so_the_sender_retries(
    receiver: httpx.AsyncClient, journal_path: Path
) -> None:
    """When the journal write fails the answer is 500; after repair the retry is recorded."""
    db = sqlite3.connect(journal_path)
    db.execute("ALTER TABLE payout_events RENAME TO payout_events_away")
    db.commit()
    body, headers = delivery(envelope(event_id="evt_r"))
    failed = await _post(receiver, body, headers)
    assert (failed.status_code, failed.json()) == (500, {"error": "journal_unavailable"})
    assert payout_status(journal_path)[0] == "created"
    db.execute("ALTER TABLE payout_events_away RENAME TO payout_events")
    db.commit()
    db.close()
    retried = await _post(receiver, body, headers)
    assert retried.json() == {"status": "ok"}
    assert payout_status(journal_path)[0] == "completed"


async def test_journal_that_cannot_be_opened_is_500(tmp_path: Path) -> None:
    """A journal path holding something that is not a database answers 500, never 2xx."""
    bad = tmp_path / "journal.db"
    bad.write_bytes(b"not a database " * 200)
    app = create_receiver(bad, [SECRET], clock=lambda: float(NOW))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as c:
        response = await _post(c, *delivery(envelope()))
    assert response.status_code == 500


async def test_body_over_the_limit_is_413(receiver: httpx.AsyncClient, journal_path: Path) -> None:
    """A body over 1 MB is refused with 413, whether declared up front or streamed."""
    body, headers = delivery(envelope(note="x" * 1_000_001))
    declared = await _post(receiver, body, headers)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 65_536):
            yield body[i : i + 65_536]

    streamed = await receiver.post("/webhooks/anton", content=chunks(), headers=headers)
    assert "content-length" not in {k.lower() for k in streamed.request.headers}
    assert declared.status_code == streamed.status_code == 413
    assert declared.json() == {"error": "body_too_large"}
    assert webhook_events(journal_path) == []


async def test_body_just_under_the_limit_is_accepted(receiver: httpx.AsyncClient) -> None:
    """The limit is on size alone: a large but allowed body is verified and recorded."""
    event = envelope(note="x" * 900_000)
    response = await _post(receiver, *delivery(event))
    assert response.status_code == 200


async def test_other_events_are_acknowledged(
    receiver: httpx.AsyncClient, journal_path: Path
) -> None:
    """A verified event batchpay does not track gets 200 ignored (no retries), nothing stored."""
    event = {"id": "evt_b", "type": "beneficiary.created", "created_at": "t", "data": {"id": "b"}}
    response = await _post(receiver, *delivery(event))
    assert (response.status_code, response.json()) == (200, {"status": "ignored"})
    assert webhook_events(journal_path) == []


async def test_health_and_methods(receiver: httpx.AsyncClient) -> None:
    """GET /health is 200; the webhook path accepts only POST."""
    assert (await receiver.get("/health")).status_code == 200
    assert (await receiver.get("/webhooks/anton")).status_code == 405


async def test_custom_path(journal_path: Path) -> None:
    """The receiver listens on the configured path and nowhere else."""
    app = create_receiver(journal_path, [SECRET], path="/hooks/x", clock=lambda: float(NOW))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as c:
        here = await c.post(
            "/hooks/x", content=delivery(envelope())[0], headers=delivery(envelope())[1]
        )
        default = await _post(c, *delivery(envelope()))
    assert (here.status_code, default.status_code) == (200, 404)


def test_receiver_without_secret_is_refused(journal_path: Path) -> None:
    """A receiver with no secret cannot be built (it would accept nothing, silently)."""
    with pytest.raises(ConfigError, match="signing secret"):
        create_receiver(journal_path, [])


async def test_concurrent_deliveries_are_each_recorded_once(
    receiver: httpx.AsyncClient, journal_path: Path
) -> None:
    """Deliveries handled at once (worker threads, one connection each) all land, once each."""
    distinct = [
        delivery(envelope(payout_id=f"pay_{i}", status="sent", event_id=f"evt_{i}"))
        for i in range(16)
    ]
    same = [delivery(envelope(event_id="evt_same"))] * 6
    answers = await asyncio.gather(*(_post(receiver, b, h) for b, h in distinct + same))
    assert {a.status_code for a in answers} == {200}
    assert Counter(a.json()["status"] for a in answers[16:]) == {"ok": 1, "duplicate": 5}
    assert len(webhook_events(journal_path)) == 17
    assert payout_status(journal_path)[0] == "completed"

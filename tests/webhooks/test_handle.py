"""handle(): verified events into the journal, once, and only forward."""

from __future__ import annotations

from pathlib import Path

from batchpay.journal import Journal
from batchpay.webhooks import HandleResult, WebhookEvent, handle

from .helpers import KNOWN_PAYOUT, NOW, envelope, payout_status, webhook_events


def _event(**kwargs: object) -> WebhookEvent:
    doc = envelope(**kwargs)  # type: ignore[arg-type]
    return WebhookEvent(doc["id"], doc["type"], doc["created_at"], doc["data"], NOW)


def test_payout_status_is_recorded_for_a_known_payout(journal_path: Path) -> None:
    """A payout.completed event moves the journal's payout to completed, with its event id."""
    with Journal(journal_path) as j:
        result = handle(_event(status="completed", event_id="evt_c"), j)
    assert result == HandleResult(
        "evt_c",
        "payout.completed",
        KNOWN_PAYOUT,
        "completed",
        duplicate=False,
        known=True,
        ignored=False,
    )
    assert result.outcome == "ok"
    assert payout_status(journal_path) == ("completed", None)
    assert webhook_events(journal_path) == [("evt_c", KNOWN_PAYOUT, "completed")]


def test_replayed_event_is_a_duplicate(journal_path: Path) -> None:
    """The same event id twice is recorded once and reported as a duplicate."""
    with Journal(journal_path) as j:
        first = handle(_event(event_id="evt_d"), j)
        second = handle(_event(event_id="evt_d"), j)
    assert (first.duplicate, second.duplicate) == (False, True)
    assert second.outcome == "duplicate"
    assert len(webhook_events(journal_path)) == 1


def test_late_sent_after_completed_keeps_completed(journal_path: Path) -> None:
    """Out of order: completed, then a late sent (a retried delivery) leaves completed."""
    with Journal(journal_path) as j:
        handle(_event(status="completed", event_id="evt_2"), j)
        late = handle(_event(status="sent", event_id="evt_1"), j)
    assert not late.duplicate
    assert payout_status(journal_path)[0] == "completed"
    assert [e[2] for e in webhook_events(journal_path)] == ["completed", "sent"]


def test_failure_reason_is_kept(journal_path: Path) -> None:
    """A failed payout's reason (reason or cancelled_reason) lands in the journal."""
    with Journal(journal_path) as j:
        handle(_event(status="failed", cancelled_reason="account closed"), j)
    assert payout_status(journal_path) == ("failed", "account closed")


def test_unknown_payout_is_recorded_but_marked_unknown(journal_path: Path) -> None:
    """A payout this journal never created is kept as an event and reported as not known."""
    with Journal(journal_path) as j:
        result = handle(_event(payout_id="pay_elsewhere", event_id="evt_u"), j)
    assert (result.known, result.duplicate, result.ignored) == (False, False, False)
    assert webhook_events(journal_path) == [("evt_u", "pay_elsewhere", "completed")]
    assert payout_status(journal_path)[0] == "created"


def test_other_event_types_are_acknowledged_and_ignored(journal_path: Path) -> None:
    """beneficiary.*, the synthetic `test` event and payout events without a status are ignored."""
    events = [
        WebhookEvent("evt_b", "beneficiary.created", "t", {"id": "ben_1", "status": "active"}, 0),
        WebhookEvent("evt_t", "test", "t", {"id": KNOWN_PAYOUT, "status": "completed"}, 0),
        WebhookEvent("evt_p", "payout.completed", "t", {"id": KNOWN_PAYOUT}, 0),
    ]
    with Journal(journal_path) as j:
        results = [handle(e, j) for e in events]
    assert [r.outcome for r in results] == ["ignored"] * 3
    assert webhook_events(journal_path) == []
    assert payout_status(journal_path)[0] == "created"

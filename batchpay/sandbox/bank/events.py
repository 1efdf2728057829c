"""Events and the webhooks queue: subscriptions, the events emitted, their deliveries."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from .._util import dumps, iso, new_id
from ..clock import SandboxClock
from ..config import SandboxConfig
from ..problems import not_found
from ..store import Store, load, store_doc
from ..validation import WebhookInput


@dataclass(frozen=True, slots=True)
class DeliveryJob:
    """One due webhook delivery: where, what bytes, and the secrets to sign with."""

    id: str
    url: str
    event_id: str
    event_type: str
    body: bytes
    secrets: tuple[str, ...]
    attempts: int


class Events:
    """Webhook subscriptions, every event emitted, and one delivery per matching subscription."""

    def __init__(self, store: Store, clock: SandboxClock, config: SandboxConfig) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.merchant_id = config.merchant_id

    def create_webhook(self, inp: WebhookInput) -> dict[str, Any]:
        """Register a subscription; the answer carries the one-time signing secret."""
        now = self.clock.time()
        secret = "whsec_" + secrets.token_hex(32)
        doc: dict[str, Any] = {
            "id": new_id("wbh", now),
            "merchant_id": self.merchant_id,
            "url": inp.url,
            "events": inp.events,
            "status": "active",
            "version": "2024-01-01",
        }
        if inp.metadata is not None:
            doc["metadata"] = inp.metadata
        doc["created_at"] = doc["updated_at"] = iso(now)
        with self.store.tx():
            self.store.execute(
                "INSERT INTO webhooks (id, seq, status, secret, doc) VALUES (?, ?, 'active', ?, ?)",
                (doc["id"], self.store.next_seq(), secret, store_doc(doc)),
            )
        return {**doc, "secret": secret}

    def list_webhooks(self, status: str | None) -> list[dict[str, Any]]:
        """Subscriptions, newest first."""
        if status:
            rows = self.store.all(
                "SELECT doc FROM webhooks WHERE status = ? ORDER BY seq DESC", (status,)
            )
        else:
            rows = self.store.all("SELECT doc FROM webhooks ORDER BY seq DESC")
        return [load(r["doc"]) for r in rows]

    def get_webhook(self, webhook_id: str) -> dict[str, Any]:
        """One subscription or 404 ``webhook_subscription_not_found``."""
        row = self.store.one("SELECT doc FROM webhooks WHERE id = ?", (webhook_id,))
        if row is None:
            raise not_found("webhook_subscription")
        return load(row["doc"])

    def rotate_webhook_secret(self, webhook_id: str) -> str:
        """New secret now; the previous one keeps co-signing for the grace window."""
        with self.store.tx():
            row = self.store.one("SELECT secret FROM webhooks WHERE id = ?", (webhook_id,))
            if row is None:
                raise not_found("webhook_subscription")
            secret = "whsec_" + secrets.token_hex(32)
            self.store.execute(
                "UPDATE webhooks SET secret = ?, previous_secret = ?, previous_until = ?"
                " WHERE id = ?",
                (
                    secret,
                    row["secret"],
                    self.clock.time() + self.config.webhook_rotation_grace_seconds,
                    webhook_id,
                ),
            )
        return secret

    def emit(self, event_type: str, data: dict[str, Any], at: float) -> None:
        """Record an event and queue a delivery to every active subscription that wants it."""
        event_id = new_id("evt", at)
        body = dumps({"id": event_id, "type": event_type, "created_at": iso(at), "data": data})
        self.store.execute(
            "INSERT INTO webhook_events (id, seq, type, created_ts, body) VALUES (?, ?, ?, ?, ?)",
            (event_id, self.store.next_seq(), event_type, at, body.decode()),
        )
        for row in self.store.all("SELECT id, doc FROM webhooks WHERE status = 'active'"):
            sub = load(row["doc"])
            if "*" not in sub["events"] and event_type not in sub["events"]:
                continue
            delivery: dict[str, Any] = {
                "id": new_id("whd", at),
                "event_id": event_id,
                "subscription_id": row["id"],
                "status": "pending",
                "url": sub["url"],
                "attempts": 0,
                "max_attempts": len(self.config.webhook_retry_schedule) + 1,
                "next_retry_at": iso(at),
                "created_at": iso(at),
                "updated_at": iso(at),
            }
            self.store.execute(
                "INSERT INTO deliveries (id, seq, event_id, subscription_id, status, attempts,"
                " next_attempt_ts, doc) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)",
                (
                    delivery["id"],
                    self.store.next_seq(),
                    event_id,
                    row["id"],
                    at,
                    store_doc(delivery),
                ),
            )

    def due_deliveries(self, now: float | None = None) -> list[DeliveryJob]:
        """Deliveries whose next attempt is due, oldest first."""
        at = self.clock.time() if now is None else now
        rows = self.store.all(
            "SELECT d.id, d.attempts, e.id AS event_id, e.type, e.body, w.secret,"
            " w.previous_secret, w.previous_until, w.doc AS sub"
            " FROM deliveries d JOIN webhook_events e ON e.id = d.event_id"
            " JOIN webhooks w ON w.id = d.subscription_id"
            " WHERE d.status = 'pending' AND d.next_attempt_ts <= ? ORDER BY d.seq",
            (at,),
        )
        jobs = []
        for r in rows:
            keys = [r["secret"]]
            if r["previous_secret"] and (r["previous_until"] or 0) > at:
                keys.append(r["previous_secret"])
            jobs.append(
                DeliveryJob(
                    id=r["id"],
                    url=load(r["sub"])["url"],
                    event_id=r["event_id"],
                    event_type=r["type"],
                    body=r["body"].encode(),
                    secrets=tuple(keys),
                    attempts=int(r["attempts"]),
                )
            )
        return jobs

    def record_delivery(
        self,
        job: DeliveryJob,
        *,
        status_code: int | None,
        error: str | None,
        duration_ms: int,
        request_headers: dict[str, str],
        response_body: str,
    ) -> None:
        """Record one attempt: success, or schedule the next retry, or abandon."""
        now = self.clock.time()
        with self.store.tx():
            row = self.store.one("SELECT doc FROM deliveries WHERE id = ?", (job.id,))
            assert row is not None
            doc = load(row["doc"])
            attempts = job.attempts + 1
            ok = status_code is not None and 200 <= status_code < 300
            doc.update(
                {
                    "attempts": attempts,
                    "request_headers": request_headers,
                    "duration_ms": duration_ms,
                    "updated_at": iso(now),
                }
            )
            if status_code is not None:
                doc["response_status"] = status_code
                doc["response_body"] = response_body[:1024]
                doc.pop("error", None)
            if error is not None:
                doc["error"] = error
                doc.pop("response_status", None)
            next_ts: float | None = None
            if ok:
                doc["status"] = "success"
                doc["delivered_at"] = iso(now)
                doc.pop("next_retry_at", None)
            elif attempts >= doc["max_attempts"]:
                doc["status"] = "abandoned"
                doc.pop("next_retry_at", None)
            else:
                next_ts = now + self.config.webhook_retry_schedule[attempts - 1]
                doc["next_retry_at"] = iso(next_ts)
            self.store.execute(
                "UPDATE deliveries SET status = ?, attempts = ?, next_attempt_ts = ?, doc = ?"
                " WHERE id = ?",
                (doc["status"], attempts, next_ts, store_doc(doc), job.id),
            )

    def deliveries(self) -> list[dict[str, Any]]:
        """Every webhook delivery record, oldest first (with its event type)."""
        rows = self.store.all(
            "SELECT d.doc, e.type FROM deliveries d JOIN webhook_events e ON e.id = d.event_id"
            " ORDER BY d.seq"
        )
        return [{**load(r["doc"]), "event_type": r["type"]} for r in rows]

    def webhook_events(self) -> list[dict[str, Any]]:
        """Every webhook event generated, oldest first (the exact bodies sent)."""
        rows = self.store.all("SELECT body FROM webhook_events ORDER BY seq")
        return [load(r["body"]) for r in rows]

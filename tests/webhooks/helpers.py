"""Builders for signed deliveries, a journal holding a known payout, and a socket server.

Deliveries are signed with the sandbox's signer, an implementation independent of the
receiver's verifier, so each checks the other.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from batchpay.journal import Journal
from batchpay.sandbox.webhooks import signature_header

SECRET = "whsec_" + "a1" * 32
OTHER_SECRET = "whsec_" + "b2" * 32
NEW_SECRET = "whsec_" + "c3" * 32
KNOWN_PAYOUT = "pay_known0001"
ENV = "sandbox:webhooks-test"
NOW = 1_760_000_000


def envelope(
    payout_id: str = KNOWN_PAYOUT,
    status: str = "completed",
    *,
    event_id: str = "evt_0001",
    event_type: str | None = None,
    created_at: str = "2026-04-15T14:45:12Z",
    **data: Any,
) -> dict[str, Any]:
    """A payout event envelope as the provider sends it."""
    return {
        "id": event_id,
        "type": event_type or f"payout.{status}",
        "created_at": created_at,
        "data": {"id": payout_id, "status": status, **data},
    }


def delivery(
    event: Mapping[str, Any] | bytes,
    secrets: Sequence[str] = (SECRET,),
    *,
    timestamp: int = NOW,
    **override: str | None,
) -> tuple[bytes, dict[str, str]]:
    """Body bytes and headers of one signed delivery; ``override`` replaces or drops headers.

    Header overrides use underscores for dashes, e.g. ``X_Webhook_ID="evt_x"`` or
    ``X_Webhook_Signature=None`` to leave it out.
    """
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    doc = json.loads(body) if isinstance(event, bytes) else dict(event)
    headers: dict[str, str | None] = {
        "Content-Type": "application/json",
        "User-Agent": "AntonPayments-Webhook/1.0",
        "X-Webhook-ID": str(doc.get("id", "")) if isinstance(doc, dict) else "evt_x",
        "X-Webhook-Event": str(doc.get("type", "")) if isinstance(doc, dict) else "x",
        "X-Webhook-Timestamp": str(timestamp),
        "X-Webhook-Signature": signature_header(tuple(secrets), timestamp, body),
    }
    for name, value in override.items():
        headers[name.replace("_", "-")] = value
    return body, {k: v for k, v in headers.items() if v is not None}


def make_journal(path: Path, payout_id: str = KNOWN_PAYOUT) -> Path:
    """A journal holding one run whose one row has a created payout ``payout_id``."""
    with Journal(path) as j:
        run_id = j.create_run(
            environment=ENV,
            api_url="http://sandbox.test",
            mode="sandbox",
            file={
                "sha256": "s",
                "fingerprint": "f",
                "name": "pay.csv",
                "size": 1,
                "format": "csv",
                "row_count": 1,
            },
            rows=[
                {
                    "row_number": 2,
                    "reference": "INV-1",
                    "beneficiary_ref": "V-1",
                    "row_key": "k1",
                    "content_hash": "h",
                    "amount": "10.00",
                    "currency": "EUR",
                    "source_currency": "EUR",
                    "payment_method": "iban",
                    "masked_account": "****3000",
                    "state": "planned",
                }
            ],
            options={},
        )
        j.begin_payout(
            environment=ENV,
            run_id=run_id,
            row_number=2,
            row_key="k1",
            reference="INV-1",
            attempt=1,
            idempotency_key="bp1-k1-1",
            body="{}",
        )
        j.record_payout_created(
            "bp1-k1-1", {"id": payout_id, "status": "created"}, request_id=None, settled_by="api"
        )
    return path


def payout_status(path: Path, payout_id: str = KNOWN_PAYOUT) -> tuple[str, str | None]:
    """(status, failure_reason) of a payout, read through a fresh connection."""
    with Journal(path) as j:
        row = j.db.execute(
            "SELECT status, failure_reason FROM payouts WHERE payout_id=?", (payout_id,)
        ).fetchone()
    return str(row["status"]), row["failure_reason"]


def webhook_events(path: Path) -> list[tuple[str, str, str]]:
    """(event_id, payout_id, status) of every webhook-sourced event in the journal."""
    with Journal(path) as j:
        return [
            (str(r[0]), str(r[1]), str(r[2]))
            for r in j.db.execute(
                "SELECT event_id, payout_id, status FROM payout_events "
                "WHERE source='webhook' ORDER BY id"
            )
        ]


def bound_socket() -> socket.socket:
    """A loopback socket bound to a free port (so its URL is known before serving)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serving(app: ASGIApp, sock: socket.socket | None = None) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a real loopback socket; yield its base URL."""
    sock = sock or bound_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not server.started:
            assert time.monotonic() < deadline, "server did not start"
            assert thread.is_alive(), "server thread died"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

"""Webhooks: verify Anton's signed deliveries and record payout statuses in the journal.

Three layers, each usable alone:

* :func:`verify` checks one delivery exactly as webhook-signing.mdx says — HMAC-SHA256
  over ``{X-Webhook-Timestamp}.{raw body}``, any ``v1=`` entry matching any of our
  secrets (rotation), constant-time comparison, a 300-second freshness window — and
  returns the parsed :class:`WebhookEvent` or raises :class:`WebhookRejected`.
* :func:`handle` records a verified ``payout.*`` event in the journal, deduplicated by
  event id; the journal only moves a payout's status forward, so deliveries that arrive
  out of order cannot undo a final status.
* :func:`create_receiver` is the Starlette app ``batchpay webhooks serve`` runs: it
  answers 2xx only after the event is durably in the journal, so the sender retries
  anything we did not keep.

:func:`subscribe` registers a URL at the provider (``batchpay webhooks subscribe``).
This is batchpay's own verifier: it shares no code with the sandbox's signer, so each
checks the other.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from batchpay.config import Secret
from batchpay.errors import BatchpayError, ConfigError, ExitCode, UnexpectedAnswer
from batchpay.journal import Journal

if TYPE_CHECKING:
    import httpx

    from batchpay.config import Settings

__all__ = [
    "DEFAULT_PATH",
    "MAX_BODY_BYTES",
    "PAYOUT_EVENTS",
    "TOLERANCE_SECONDS",
    "AlreadySubscribed",
    "HandleResult",
    "Subscription",
    "WebhookEvent",
    "WebhookRejected",
    "create_receiver",
    "expand_events",
    "handle",
    "subscribe",
    "subscription_key",
    "verify",
]

log = logging.getLogger(__name__)

DEFAULT_PATH = "/webhooks/anton"
MAX_BODY_BYTES = 1_000_000
TOLERANCE_SECONDS = 300

PAYOUT_EVENTS: tuple[str, ...] = (
    "payout.created",
    "payout.approved",
    "payout.processing",
    "payout.sent",
    "payout.completed",
    "payout.failed",
    "payout.cancelled",
    "payout.returned",
    "payout.screening_failed",
    "payout.velocity_blocked",
)

_TIMESTAMP_RE = re.compile(r"[0-9]{1,15}")
_SIGNATURE_RE = re.compile(r"v1=([0-9a-fA-F]{64})")
# Two entries is the documented maximum (a rotation); a few more are tolerated, a flood is not.
_MAX_SIGNATURE_ENTRIES = 16


class WebhookRejected(BatchpayError):
    """A delivery failed verification; ``reason`` is a short code safe to send back.

    Reasons: ``missing_signature``, ``missing_timestamp``, ``missing_event_id``,
    ``bad_timestamp``, ``stale_timestamp``, ``malformed_signature``, ``bad_signature``,
    ``bad_body``, ``id_mismatch``, ``event_mismatch``. Messages never contain a secret
    or a signature.
    """

    exit_code = ExitCode.INPUT_UNREADABLE

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"webhook rejected: {reason}" + (f" ({detail})" if detail else ""))
        self.reason = reason


class AlreadySubscribed(BatchpayError):
    """The provider already holds a subscription for this URL."""

    exit_code = ExitCode.CONFIG

    def __init__(self, url: str, subscription_id: str) -> None:
        super().__init__(
            f"{url} is already subscribed as {subscription_id}",
            hint="its signing secret was shown once, when it was created; if it was lost, "
            "rotate the subscription's secret at the provider",
        )
        self.subscription_id = subscription_id


@dataclass(frozen=True)
class WebhookEvent:
    """A verified delivery: the envelope plus the signed timestamp."""

    id: str
    type: str
    created_at: str
    data: dict[str, Any]
    timestamp: int


@dataclass(frozen=True)
class HandleResult:
    """What recording one event did."""

    event_id: str
    event_type: str
    payout_id: str | None
    status: str | None
    duplicate: bool  # the journal had already recorded this event id
    known: bool  # the journal holds a payout intent with this payout id
    ignored: bool  # not a payout status event: acknowledged, nothing recorded

    @property
    def outcome(self) -> str:
        """``ok``, ``duplicate`` or ``ignored``: the receiver's answer."""
        if self.ignored:
            return "ignored"
        return "duplicate" if self.duplicate else "ok"


@dataclass(frozen=True)
class Subscription:
    """A webhook subscription the provider created, with its one-time signing secret."""

    id: str
    url: str
    events: tuple[str, ...]
    secret: Secret


# -- verification ----------------------------------------------------------------------------


def _secret_bytes(secret: Secret | str) -> bytes:
    return (secret.reveal() if isinstance(secret, Secret) else secret).encode("utf-8")


def _signatures(header: str) -> list[bytes]:
    """The ``v1=`` digests in the header; entries of other schemes or shapes are skipped."""
    entries = [e.strip() for e in header.split(",") if e.strip()]
    if len(entries) > _MAX_SIGNATURE_ENTRIES:
        raise WebhookRejected("malformed_signature", f"{len(entries)} entries")
    digests = []
    for entry in entries:
        m = _SIGNATURE_RE.fullmatch(entry)
        if m is not None:
            digests.append(bytes.fromhex(m.group(1)))
    if not digests:
        raise WebhookRejected("malformed_signature", "no v1= entry of 64 hex digits")
    return digests


def _envelope(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise WebhookRejected("bad_body", "not JSON") from None
    if not isinstance(doc, dict):
        raise WebhookRejected("bad_body", "not a JSON object")
    for name in ("id", "type", "created_at"):
        if not isinstance(doc.get(name), str) or not doc[name]:
            raise WebhookRejected("bad_body", f"{name} missing or not a string")
    if not isinstance(doc.get("data"), dict):
        raise WebhookRejected("bad_body", "data missing or not an object")
    return doc


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[Secret | str],
    *,
    now: float,
    tolerance: int = TOLERANCE_SECONDS,
) -> WebhookEvent:
    """Check one delivery's signature, freshness and envelope; return the event.

    ``body`` must be the raw request bytes. ``headers`` is looked up case-insensitively.
    Accepted when any ``v1=`` entry matches any of ``secrets``; raises
    :class:`WebhookRejected` otherwise.
    """
    if not secrets:
        raise ValueError("verify needs at least one webhook secret")
    h = {k.lower(): v for k, v in headers.items()}
    signature_header = h.get("x-webhook-signature", "").strip()
    raw_timestamp = h.get("x-webhook-timestamp", "").strip()
    event_id = h.get("x-webhook-id", "").strip()
    if not signature_header:
        raise WebhookRejected("missing_signature")
    if not raw_timestamp:
        raise WebhookRejected("missing_timestamp")
    if not event_id:
        raise WebhookRejected("missing_event_id")
    if not _TIMESTAMP_RE.fullmatch(raw_timestamp):
        raise WebhookRejected("bad_timestamp", "not Unix seconds")
    timestamp = int(raw_timestamp)
    skew = now - timestamp
    if abs(skew) > tolerance:
        raise WebhookRejected("stale_timestamp", f"{skew:+.0f} s from now")
    candidates = _signatures(signature_header)

    signed = raw_timestamp.encode("ascii") + b"." + body
    matched = False
    for secret in secrets:
        expected = hmac.new(_secret_bytes(secret), signed, hashlib.sha256).digest()
        for candidate in candidates:
            # No early exit: the work done does not depend on which entry matched.
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise WebhookRejected("bad_signature")

    doc = _envelope(body)
    if doc["id"] != event_id:
        raise WebhookRejected("id_mismatch", "X-Webhook-ID is not the envelope id")
    header_type = h.get("x-webhook-event", "").strip()
    if header_type and header_type != doc["type"]:
        raise WebhookRejected("event_mismatch", "X-Webhook-Event is not the envelope type")
    return WebhookEvent(
        id=doc["id"],
        type=doc["type"],
        created_at=doc["created_at"],
        data=doc["data"],
        timestamp=timestamp,
    )


# -- recording -------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def handle(event: WebhookEvent, journal: Journal) -> HandleResult:
    """Record a verified event: a ``payout.*`` status goes into the journal, once.

    Other event types (and ``payout.*`` events without ``data.id`` and ``data.status``)
    are acknowledged and ignored.
    """
    data = event.data
    payout_id, status = _text(data.get("id")), _text(data.get("status"))
    if not event.type.startswith("payout.") or payout_id is None or status is None:
        return HandleResult(event.id, event.type, None, None, False, False, True)
    reason = (
        _text(data.get("reason"))
        or _text(data.get("cancelled_reason"))
        or _text(data.get("failure_reason"))
    )
    new = journal.record_status(
        payout_id,
        status,
        source="webhook",
        event_id=event.id,
        occurred_at=event.created_at,
        reason=reason,
    )
    known = journal.knows_payout(payout_id)
    return HandleResult(event.id, event.type, payout_id, status, not new, known, False)


# -- the receiver ----------------------------------------------------------------------------


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _TooLarge
    return bytes(body)


def create_receiver(
    journal_path: Path | str,
    secrets: Sequence[Secret | str],
    *,
    path: str = DEFAULT_PATH,
    clock: Callable[[], float] = time.time,
    max_body_bytes: int = MAX_BODY_BYTES,
    tolerance: int = TOLERANCE_SECONDS,
) -> Starlette:
    """The webhook receiver app: POST ``path`` verifies and records; GET ``/health``.

    Answers 200 ``{"status": "ok" | "duplicate" | "ignored"}`` only after the event is
    committed to the journal; 400 ``{"error": reason}`` for a delivery that fails
    verification; 413 for a body over ``max_body_bytes``; 500 when the journal cannot
    be written, so the sender retries.
    """
    keys = tuple(secrets)
    if not keys:
        raise ConfigError(
            "the webhook receiver needs at least one signing secret",
            hint="set BATCHPAY_WEBHOOK_SECRET",
        )
    if not path.startswith("/"):
        raise ValueError(f"the receiver path must start with '/', not {path!r}")
    journal_file = Path(journal_path)

    def record(event: WebhookEvent) -> HandleResult:
        # One connection per request, opened and closed in the worker thread that uses it:
        # SQLite connections are not shared between threads.
        with Journal(journal_file) as journal:
            return handle(event, journal)

    async def receive(request: Request) -> Response:
        try:
            body = await _read_body(request, max_body_bytes)
        except _TooLarge:
            log.warning("webhook rejected: body over %d bytes", max_body_bytes)
            return JSONResponse({"error": "body_too_large"}, status_code=413)
        try:
            event = verify(body, request.headers, keys, now=clock(), tolerance=tolerance)
        except WebhookRejected as exc:
            log.warning("%s", exc.message)
            return JSONResponse({"error": exc.reason}, status_code=400)
        try:
            result = await run_in_threadpool(record, event)
        except Exception:
            # Not durably recorded: a non-2xx makes the sender deliver it again.
            log.exception("webhook %s not recorded: the journal could not be written", event.id)
            return JSONResponse({"error": "journal_unavailable"}, status_code=500)
        if result.payout_id is not None and not result.known:
            log.info("webhook %s: payout %s is not in this journal", event.id, result.payout_id)
        return JSONResponse({"status": result.outcome})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route(path, receive, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )


# -- subscribing -----------------------------------------------------------------------------


def expand_events(patterns: Sequence[str]) -> list[str]:
    """Event types to subscribe: ``payout.*`` becomes every payout event; order kept, no repeats."""
    events: list[str] = []
    for pattern in patterns:
        for event in PAYOUT_EVENTS if pattern.strip() == "payout.*" else (pattern.strip(),):
            if event and event not in events:
                events.append(event)
    return events


def subscription_key(url: str, events: Sequence[str]) -> str:
    """The idempotency key of a subscription: fixed by the URL and the set of events."""
    digest = hashlib.sha256(f"{url}\n{','.join(sorted(set(events)))}".encode()).hexdigest()
    return f"bp1-webhook-{digest[:40]}"


async def subscribe(
    url: str,
    events: Sequence[str] = ("payout.*",),
    *,
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Subscription:
    """Subscribe ``url`` to ``events`` at the provider; the answer holds the secret, once.

    A URL that already has an active subscription is refused (:class:`AlreadySubscribed`)
    rather than subscribed twice.
    """
    from batchpay.config import Mode
    from batchpay.connection import connect

    if settings.mode is Mode.EMBEDDED and transport is None:
        raise ConfigError(
            "the embedded sandbox lives only as long as one command and cannot send webhooks",
            hint="run `batchpay sandbox serve` and set BATCHPAY_API_URL and BATCHPAY_API_KEY, "
            "or use the Anton sandbox",
        )
    wanted = expand_events(events)
    if not wanted:
        raise ConfigError("no event types to subscribe to", hint="pass --events payout.*")
    with Journal(settings.journal_path) as journal:
        async with connect(settings, journal, transport=transport) as conn:
            for existing in await conn.client.list_webhooks():
                if existing.get("url") == url and existing.get("status", "active") == "active":
                    raise AlreadySubscribed(url, str(existing.get("id")))
            result = await conn.client.create_webhook(url, wanted, subscription_key(url, wanted))
    data = result.data if isinstance(result.data, dict) else {}
    secret = data.get("secret")
    if not isinstance(secret, str) or not secret:
        raise UnexpectedAnswer(
            f"the provider created subscription {data.get('id')} but sent no signing secret",
            hint="rotate the subscription's secret at the provider to get a new one",
        )
    return Subscription(
        id=str(data.get("id") or ""),
        url=str(data.get("url") or url),
        events=tuple(str(e) for e in data.get("events") or wanted),
        secret=Secret(secret),
    )

"""Signed webhook delivery, as webhook-signing.mdx describes.

Signature: lowercase-hex HMAC-SHA256 over ``{timestamp}.{raw body}`` with the
subscription secret, sent as ``X-Webhook-Signature: v1=<hex>`` (two comma-separated
entries during a rotation grace window). The timestamp is wall-clock Unix seconds,
because receivers check freshness against their own real clock.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx

from .bank import Bank, DeliveryJob

USER_AGENT = "AntonPayments-Webhook/1.0"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``{timestamp}.{body}`` under ``secret``."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets: tuple[str, ...], timestamp: int, body: bytes) -> str:
    """The ``X-Webhook-Signature`` value: one ``v1=`` entry per signing secret."""
    return ",".join(f"v1={sign(s, timestamp, body)}" for s in secrets)


def verify(
    secret: str,
    header: str,
    timestamp: str,
    body: bytes,
    *,
    now: float | None = None,
    tolerance: float = 300,
) -> bool:
    """Check a delivery the way a receiver should: fresh timestamp, any ``v1=`` entry matching."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        return False
    expected = sign(secret, ts, body)
    for entry in header.split(","):
        candidate = entry.strip().removeprefix("v1=")
        if hmac.compare_digest(expected, candidate):
            return True
    return False


class Deliverer:
    """Sends due deliveries over HTTP and records each attempt in the bank."""

    def __init__(
        self,
        bank: Bank,
        *,
        transport: httpx.AsyncBaseTransport | None,
        timeout_seconds: float,
    ) -> None:
        self._bank = bank
        self._transport = transport
        self._timeout = timeout_seconds
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport, timeout=self._timeout, follow_redirects=False
            )
        return self._client

    async def deliver_due(self) -> int:
        """Attempt every due delivery once; return how many attempts were made."""
        jobs = self._bank.due_deliveries()
        for job in jobs:
            await self._attempt(job)
        return len(jobs)

    async def _attempt(self, job: DeliveryJob) -> None:
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Webhook-ID": job.event_id,
            "X-Webhook-Event": job.event_type,
            "X-Webhook-Timestamp": str(timestamp),
            "X-Webhook-Signature": signature_header(job.secrets, timestamp, job.body),
        }
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        text = ""
        try:
            response = await self._http().post(job.url, content=job.body, headers=headers)
            status = response.status_code
            text = response.text
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self._bank.record_delivery(
            job,
            status_code=status,
            error=error,
            duration_ms=int((time.monotonic() - started) * 1000),
            request_headers={k: v for k, v in headers.items() if k != "X-Webhook-Signature"},
            response_body=text,
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

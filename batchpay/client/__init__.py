"""The async client for the Anton Payments API that the pipeline uses.

One :class:`AntonClient` per run, shared by every concurrent task::

    async with AntonClient(base_url, ApiKey(secret)) as client:
        result = await client.create_payout(body, idempotency_key=key)
        result.data["id"], result.replayed

What it promises:

* **Idempotency** — the caller supplies the ``Idempotency-Key``; the client never
  mints one. The key and the JSON body (serialised once, sent as the same bytes)
  are fixed before the retry loop, so every retry is the same request.
* **Errors** — a non-2xx answer raises the :class:`~batchpay.errors.ApiError`
  subclass :func:`~batchpay.errors.api_error_from_response` picks ("the API said
  no"); a network failure, timeout or unreadable answer raises
  :class:`~batchpay.errors.TransportError` ("could not reach the API"). For a
  ``POST`` a ``TransportError`` means the outcome is **unknown**: the payout may
  exist. Settle it later by sending the same request with the same key (a replay
  answers ``X-Idempotent-Replayed: true``), or after the provider's 24-hour
  window by looking the payout up by ``reference`` — never with a new key.
* **Retries** — only where the error catalog says it is safe (see
  :mod:`batchpay.retry`); the last error is raised when attempts run out.
* **Rate limit** — every attempt passes a shared :class:`~batchpay.ratelimit.RateLimiter`
  and a concurrency cap.
* **Audit** — every HTTP attempt, retries and failures included, is reported to
  ``on_call`` as a :class:`CallRecord`. Records carry no secrets and no bodies.
* **Tolerant reader** — single resources may come bare or as ``{"data": {...}}``;
  lists as ``{"data": [...], "has_more", "next_cursor"}`` (or a bare array).
  Numbers with a fraction are decoded as :class:`~decimal.Decimal`, never float.

Credentials are an :class:`httpx.Auth`: :class:`ApiKey` sends
``Authorization: Bearer <key>``; :class:`batchpay.auth.OAuthClient` (the newest
API generation: OAuth client credentials with DPoP) implements ``async_auth_flow``,
yielding a token request to ``/oauth/token`` when the cached token is missing or
about to expire, then the real request with ``Authorization: DPoP <token>`` and a
fresh per-request ``DPoP`` proof — the client needs no change. An error the flow
raises (a refused token request) is treated like any other answer of the attempt.

One module per part: :mod:`~batchpay.client.records` (what comes back),
:mod:`~batchpay.client.credentials`, :mod:`~batchpay.client.wire` (bodies, envelopes,
headers), :mod:`~batchpay.client.base` (the one request path) and
:mod:`~batchpay.client.resources` (the API's resources as :class:`AntonClient` methods).
"""

from __future__ import annotations

from batchpay.client.base import DEFAULT_USER_AGENT
from batchpay.client.credentials import ApiKey, Credentials
from batchpay.client.records import ApiResult, CallRecord
from batchpay.client.records import OnCall as OnCall
from batchpay.client.resources import AntonClient
from batchpay.ratelimit import RateLimiter
from batchpay.retry import RetryPolicy, set_testing

__all__ = [
    "DEFAULT_USER_AGENT",
    "AntonClient",
    "ApiKey",
    "ApiResult",
    "CallRecord",
    "Credentials",
    "RateLimiter",
    "RetryPolicy",
    "set_testing",
]

"""``WebhookSubscriptionCreateRequest``: a reachable URL and known event types."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..problems import ApiProblem
from .common import Collector, reject_unknown, require_object

WEBHOOK_EVENT_TYPES = (
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
    "beneficiary.created",
    "beneficiary.updated",
    "beneficiary.deleted",
    "beneficiary.blocked",
    "instrument.created",
    "instrument.updated",
    "instrument.deleted",
    "batch.uploaded",
    "batch.completed",
    "batch.failed",
    "fx.quote.created",
    "fx.exchange.created",
    "fx.exchange.completed",
    "fx.exchange.failed",
    "funding.credit",
    "screening.hit",
    "balance.low",
    "test",
)
_WEBHOOK_FIELDS = frozenset({"url", "events", "metadata"})


@dataclass(frozen=True, slots=True)
class WebhookInput:
    """A validated webhook subscription request."""

    url: str
    events: list[str]
    metadata: dict[str, str] | None


def _private_host(host: str) -> bool:
    lowered = host.lower().rstrip(".")
    if lowered == "localhost" or lowered.endswith((".local", ".internal", ".localhost")):
        return True
    try:
        address = ipaddress.ip_address(lowered.strip("[]"))
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local or address.is_reserved


def validate_webhook(raw: Any, *, allow_insecure: bool) -> WebhookInput:
    """Validate a ``WebhookSubscriptionCreateRequest``; raise ApiProblem with the url codes."""
    body = require_object(raw)
    reject_unknown(body, _WEBHOOK_FIELDS, "")
    url = body.get("url")
    if url is None or (isinstance(url, str) and not url.strip()):
        raise ApiProblem(400, "webhook_url_required", "url is required")
    if not isinstance(url, str):
        raise ApiProblem(400, "webhook_url_invalid", "url must be a string")
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.hostname:
        raise ApiProblem(400, "webhook_url_invalid", "url is malformed or has no host")
    if parts.scheme not in ("http", "https"):
        raise ApiProblem(400, "webhook_url_not_https", "url must use https://")
    if not allow_insecure:
        if parts.scheme != "https":
            raise ApiProblem(400, "webhook_url_not_https", "url must use https://")
        if _private_host(parts.hostname):
            raise ApiProblem(
                400, "webhook_url_private_address", "url must be a publicly reachable address"
            )
    c = Collector()
    events = body.get("events")
    if events is None:
        c.add("events", "is required")
    elif not isinstance(events, list) or not events:
        c.add("events", "must be a non-empty array of event types")
    else:
        for i, event in enumerate(events):
            if event != "*" and event not in WEBHOOK_EVENT_TYPES:
                c.add(f"events.{i}", "is not a webhook event type")
    metadata = c.string_map(body, "metadata", "")
    c.raise_if_any()
    assert isinstance(events, list)
    return WebhookInput(url=url.strip(), events=[str(e) for e in events], metadata=metadata)

"""``/v1/payouts``: create, list, read, follow and cancel payouts."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..bank import Page, check_choice, parse_limit
from ..validation import validate_cancel, validate_payout
from ._common import (
    CURRENCY,
    json_response,
    path_id,
    query_id,
    query_match,
    query_time,
    read_json,
    runtime,
)

PAYOUT_STATUSES = (
    "created",
    "pending_screening",
    "screening_failed",
    "pending_approval",
    "approved",
    "processing",
    "sent",
    "completed",
    "failed",
    "returned",
    "cancelled",
    "manual_review",
    "velocity_blocked",
    "pending_engine_review",
)


async def create_payout(request: Request) -> Response:
    """``POST /v1/payouts``."""
    inp = validate_payout(await read_json(request))
    key = request.headers.get("idempotency-key")
    return json_response(runtime(request).bank.create_payout(inp, key), 201)


async def list_payouts(request: Request) -> Response:
    """``GET /v1/payouts``."""
    q = request.query_params
    statuses = q.getlist("status")
    for status in statuses:
        check_choice("status", status, PAYOUT_STATUSES)
    equals: dict[str, str] = {}
    for name, prefix in (("beneficiary_id", "ben"), ("instrument_id", "ins")):
        value = query_id(request, name, prefix)
        if value is not None:
            equals[name] = value
    batch_id = query_id(request, "batch_id", "bat")
    if batch_id is not None:
        equals["batch_id"] = batch_id
    dest_currency = query_match(request, "dest_currency", CURRENCY, "an ISO-4217 code")
    if dest_currency is not None:
        equals["dest_currency"] = dest_currency
    if q.get("reference") is not None:
        equals["reference"] = q["reference"]
    page = Page(parse_limit(q.get("limit"), strict=False), q.get("cursor"))
    return json_response(
        runtime(request).bank.list_payouts(
            statuses=statuses,
            equals=equals,
            created_after=query_time(request, "created_after"),
            created_before=query_time(request, "created_before"),
            page=page,
        )
    )


async def get_payout(request: Request) -> Response:
    """``GET /v1/payouts/{id}``."""
    return json_response(runtime(request).bank.get_payout(path_id(request, "pay", "payout")))


async def payout_events(request: Request) -> Response:
    """``GET /v1/payouts/{id}/events``."""
    events = runtime(request).bank.payout_events(path_id(request, "pay", "payout"))
    return json_response({"data": events})


async def cancel_payout(request: Request) -> Response:
    """``POST /v1/payouts/{id}/cancel``."""
    payout_id = path_id(request, "pay", "payout")
    reason = validate_cancel(await read_json(request, required=False))
    return json_response(runtime(request).bank.cancel_payout(payout_id, reason))

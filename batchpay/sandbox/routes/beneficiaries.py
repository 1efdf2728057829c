"""``/v1/beneficiaries`` and ``/v1/instruments``: who is paid, and the accounts paid into."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..bank import Page, check_choice, parse_limit
from ..validation import PAYMENT_METHOD_CODES, validate_beneficiary, validate_instrument
from ._common import (
    COUNTRY,
    CURRENCY,
    json_response,
    path_id,
    query_id,
    query_match,
    read_json,
    runtime,
)


async def create_beneficiary(request: Request) -> Response:
    """``POST /v1/beneficiaries``."""
    inp = validate_beneficiary(await read_json(request))
    return json_response(runtime(request).bank.create_beneficiary(inp), 201)


async def list_beneficiaries(request: Request) -> Response:
    """``GET /v1/beneficiaries``."""
    q = request.query_params
    filters: dict[str, str] = {}
    for name, allowed in (
        ("status", ("active", "archived", "blocked")),
        ("type", ("individual", "business")),
    ):
        value = check_choice(name, q.get(name), allowed)
        if value is not None:
            filters[name] = value
    country = query_match(request, "country", COUNTRY, "an ISO-3166 alpha-2 code")
    if country is not None:
        filters["country"] = country
    if q.get("external_ref") is not None:
        filters["external_ref"] = q["external_ref"]
    page = Page(parse_limit(q.get("limit"), strict=True), q.get("cursor"))
    return json_response(runtime(request).bank.list_beneficiaries(filters, page))


async def get_beneficiary(request: Request) -> Response:
    """``GET /v1/beneficiaries/{id}``."""
    beneficiary_id = path_id(request, "ben", "beneficiary")
    return json_response(runtime(request).bank.get_beneficiary(beneficiary_id))


async def create_instrument(request: Request) -> Response:
    """``POST /v1/beneficiaries/{id}/instruments``."""
    bank = runtime(request).bank
    beneficiary_id = path_id(request, "ben", "beneficiary")
    bank.get_beneficiary(beneficiary_id)
    inp = validate_instrument(await read_json(request))
    return json_response(bank.create_instrument(beneficiary_id, inp), 201)


def _instrument_filters(request: Request) -> dict[str, str]:
    q = request.query_params
    filters: dict[str, str] = {}
    method = check_choice("method", q.get("method"), PAYMENT_METHOD_CODES)
    status = check_choice("status", q.get("status"), ("active", "disabled"))
    currency = query_match(request, "currency", CURRENCY, "an ISO-4217 code")
    country = query_match(request, "country", COUNTRY, "an ISO-3166 alpha-2 code")
    for name, value in (
        ("method", method),
        ("status", status),
        ("currency", currency),
        ("country", country),
    ):
        if value is not None:
            filters[name] = value
    return filters


async def list_beneficiary_instruments(request: Request) -> Response:
    """``GET /v1/beneficiaries/{id}/instruments``."""
    bank = runtime(request).bank
    beneficiary_id = path_id(request, "ben", "beneficiary")
    bank.get_beneficiary(beneficiary_id)
    filters = {"beneficiary_id": beneficiary_id, **_instrument_filters(request)}
    q = request.query_params
    page = Page(parse_limit(q.get("limit"), strict=True), q.get("cursor"))
    return json_response(bank.list_instruments(filters, page))


async def list_instruments(request: Request) -> Response:
    """``GET /v1/instruments``."""
    filters = _instrument_filters(request)
    beneficiary_id = query_id(request, "beneficiary_id", "ben")
    if beneficiary_id is not None:
        filters = {"beneficiary_id": beneficiary_id, **filters}
    q = request.query_params
    page = Page(parse_limit(q.get("limit"), strict=True), q.get("cursor"))
    return json_response(runtime(request).bank.list_instruments(filters, page))


async def get_instrument(request: Request) -> Response:
    """``GET /v1/instruments/{id}``."""
    instrument_id = path_id(request, "ins", "instrument")
    return json_response(runtime(request).bank.get_instrument(instrument_id))

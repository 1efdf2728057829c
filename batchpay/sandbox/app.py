"""Routes of the sandbox: the /v1 API surface and the /_sandbox admin surface."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from ._util import dumps, iso, parse_iso
from .bank import Page, check_choice, parse_limit
from .gateway import Gateway
from .problems import ApiProblem, error_envelope, invalid_body, invalid_parameter
from .runtime import Runtime
from .validation import (
    PAYMENT_METHOD_CODES,
    validate_beneficiary,
    validate_cancel,
    validate_instrument,
    validate_payout,
    validate_webhook,
)

Handler = Callable[[Request], Awaitable[Response]]

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
_IDS = {
    "ben": re.compile(r"^ben_[a-zA-Z0-9]+$"),
    "ins": re.compile(r"^ins_[a-zA-Z0-9]+$"),
    "pay": re.compile(r"^pay_[a-zA-Z0-9]+$"),
    "bat": re.compile(r"^bat_[a-zA-Z0-9]+$"),
    "wbh": re.compile(r"^wbh_[a-zA-Z0-9]+$"),
}
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def json_response(data: Any, status: int = 200) -> Response:
    """A JSON answer in the compact form the API uses."""
    return Response(dumps(data), status_code=status, media_type="application/json")


async def read_json(request: Request, *, required: bool = True) -> Any:
    """The request body as JSON; 400 ``invalid_request_body`` when it is not."""
    raw = await request.body()
    if not raw.strip():
        if required:
            raise invalid_body("a JSON request body is required")
        return None
    ctype = request.headers.get("content-type")
    if ctype and ctype.split(";")[0].strip().lower() != "application/json":
        raise invalid_body("content type must be application/json")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise invalid_body("request body is not valid JSON") from None


def _query_id(request: Request, name: str, prefix: str) -> str | None:
    value = request.query_params.get(name)
    if value is not None and not _IDS[prefix].match(value):
        raise invalid_parameter(name, f"must be an id starting with {prefix}_")
    return value


def _query_match(request: Request, name: str, regex: re.Pattern[str], what: str) -> str | None:
    value = request.query_params.get(name)
    if value is not None and not regex.match(value):
        raise invalid_parameter(name, f"must be {what}")
    return value


def _query_time(request: Request, name: str) -> float | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        return parse_iso(value)
    except ValueError:
        raise invalid_parameter(name, "must be an RFC 3339 date-time") from None


def _path_id(request: Request, prefix: str, kind: str) -> str:
    value: str = request.path_params["id"]
    if not _IDS[prefix].match(value):
        raise ApiProblem(404, f"{kind}_not_found", f"{kind.replace('_', ' ')} not found")
    return value


def build_app(rt: Runtime, *, background_ticker: bool | None = None) -> ASGIApp:
    """The sandbox ASGI app: Starlette routes behind the :class:`Gateway`."""
    bank = rt.bank
    run_ticker = (not rt.config.manual_clock) if background_ticker is None else background_ticker

    # ------------------------------------------------------------------ balances

    async def list_balances(request: Request) -> Response:
        return json_response({"data": bank.list_balances()})

    async def get_balance(request: Request) -> Response:
        currency: str = request.path_params["currency"]
        if not _CURRENCY.match(currency):
            raise ApiProblem(404, "balance_not_found", "balance not found")
        return json_response(bank.get_balance(currency))

    # ------------------------------------------------------------------ beneficiaries

    async def create_beneficiary(request: Request) -> Response:
        inp = validate_beneficiary(await read_json(request))
        return json_response(bank.create_beneficiary(inp), 201)

    async def list_beneficiaries(request: Request) -> Response:
        q = request.query_params
        filters: dict[str, str] = {}
        for name, allowed in (
            ("status", ("active", "archived", "blocked")),
            ("type", ("individual", "business")),
        ):
            value = check_choice(name, q.get(name), allowed)
            if value is not None:
                filters[name] = value
        country = _query_match(request, "country", _COUNTRY, "an ISO-3166 alpha-2 code")
        if country is not None:
            filters["country"] = country
        if q.get("external_ref") is not None:
            filters["external_ref"] = q["external_ref"]
        page = Page(parse_limit(q.get("limit"), strict=True), q.get("cursor"))
        return json_response(bank.list_beneficiaries(filters, page))

    async def get_beneficiary(request: Request) -> Response:
        return json_response(bank.get_beneficiary(_path_id(request, "ben", "beneficiary")))

    # ------------------------------------------------------------------ instruments

    async def create_instrument(request: Request) -> Response:
        beneficiary_id = _path_id(request, "ben", "beneficiary")
        bank.get_beneficiary(beneficiary_id)
        inp = validate_instrument(await read_json(request))
        return json_response(bank.create_instrument(beneficiary_id, inp), 201)

    def _instrument_filters(request: Request) -> dict[str, str]:
        q = request.query_params
        filters: dict[str, str] = {}
        method = check_choice("method", q.get("method"), PAYMENT_METHOD_CODES)
        status = check_choice("status", q.get("status"), ("active", "disabled"))
        currency = _query_match(request, "currency", _CURRENCY, "an ISO-4217 code")
        country = _query_match(request, "country", _COUNTRY, "an ISO-3166 alpha-2 code")
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
        beneficiary_id = _path_id(request, "ben", "beneficiary")
        bank.get_beneficiary(beneficiary_id)
        filters = {"beneficiary_id": beneficiary_id, **_instrument_filters(request)}
        q = request.query_params
        page = Page(parse_limit(q.get("limit"), strict=True), q.get("cursor"))
        return json_response(bank.list_instruments(filters, page))

    async def list_instruments(request: Request) -> Response:
        filters = _instrument_filters(request)
        beneficiary_id = _query_id(request, "beneficiary_id", "ben")
        if beneficiary_id is not None:
            filters = {"beneficiary_id": beneficiary_id, **filters}
        q = request.query_params
        page = Page(parse_limit(q.get("limit"), strict=True), q.get("cursor"))
        return json_response(bank.list_instruments(filters, page))

    async def get_instrument(request: Request) -> Response:
        return json_response(bank.get_instrument(_path_id(request, "ins", "instrument")))

    # ------------------------------------------------------------------ payouts

    async def create_payout(request: Request) -> Response:
        inp = validate_payout(await read_json(request))
        key = request.headers.get("idempotency-key")
        return json_response(bank.create_payout(inp, key), 201)

    async def list_payouts(request: Request) -> Response:
        q = request.query_params
        statuses = q.getlist("status")
        for status in statuses:
            check_choice("status", status, PAYOUT_STATUSES)
        equals: dict[str, str] = {}
        for name, prefix in (("beneficiary_id", "ben"), ("instrument_id", "ins")):
            value = _query_id(request, name, prefix)
            if value is not None:
                equals[name] = value
        batch_id = _query_id(request, "batch_id", "bat")
        if batch_id is not None:
            equals["batch_id"] = batch_id
        dest_currency = _query_match(request, "dest_currency", _CURRENCY, "an ISO-4217 code")
        if dest_currency is not None:
            equals["dest_currency"] = dest_currency
        if q.get("reference") is not None:
            equals["reference"] = q["reference"]
        page = Page(parse_limit(q.get("limit"), strict=False), q.get("cursor"))
        return json_response(
            bank.list_payouts(
                statuses=statuses,
                equals=equals,
                created_after=_query_time(request, "created_after"),
                created_before=_query_time(request, "created_before"),
                page=page,
            )
        )

    async def get_payout(request: Request) -> Response:
        return json_response(bank.get_payout(_path_id(request, "pay", "payout")))

    async def payout_events(request: Request) -> Response:
        return json_response({"data": bank.payout_events(_path_id(request, "pay", "payout"))})

    async def cancel_payout(request: Request) -> Response:
        payout_id = _path_id(request, "pay", "payout")
        reason = validate_cancel(await read_json(request, required=False))
        return json_response(bank.cancel_payout(payout_id, reason))

    # ------------------------------------------------------------------ webhooks

    async def create_webhook(request: Request) -> Response:
        inp = validate_webhook(
            await read_json(request), allow_insecure=rt.config.webhook_allow_insecure_urls
        )
        return json_response(bank.create_webhook(inp), 201)

    async def list_webhooks(request: Request) -> Response:
        status = check_choice("status", request.query_params.get("status"), ("active", "inactive"))
        return json_response({"data": bank.list_webhooks(status)})

    async def get_webhook(request: Request) -> Response:
        return json_response(bank.get_webhook(_path_id(request, "wbh", "webhook_subscription")))

    async def rotate_webhook(request: Request) -> Response:
        webhook_id = _path_id(request, "wbh", "webhook_subscription")
        return json_response({"secret": bank.rotate_webhook_secret(webhook_id)})

    # ------------------------------------------------------------------ admin (/_sandbox)

    async def admin_health(request: Request) -> Response:
        return json_response({"ok": True, "now": iso(rt.clock.time())})

    async def admin_ledger(request: Request) -> Response:
        return json_response({"data": bank.ledger()})

    async def admin_clock(request: Request) -> Response:
        return json_response(
            {"now": rt.clock.now().isoformat(), "manual": rt.clock.manual, "unix": rt.clock.time()}
        )

    async def admin_advance(request: Request) -> Response:
        body = await read_json(request)
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise invalid_body("seconds must be a non-negative number")
        rt.clock.advance(float(seconds))
        result = await rt.tick()
        return json_response({**result, "now": result["now"].isoformat()})

    async def admin_tick(request: Request) -> Response:
        result = await rt.tick()
        return json_response({**result, "now": result["now"].isoformat()})

    async def admin_faults(request: Request) -> Response:
        if request.method == "DELETE":
            rt.faults.clear()
        elif request.method == "POST":
            body = await read_json(request)
            if not isinstance(body, dict):
                raise invalid_body("body must be an object")
            plan = body.pop("plan", None)
            if body.pop("clear", False):
                rt.faults.clear()
            try:
                if body:
                    rt.faults.set(**body)
                if plan is not None:
                    if not isinstance(plan, dict):
                        raise ValueError("plan must map routes to lists of outcomes")
                    for route, outcomes in plan.items():
                        rt.faults.plan(route, outcomes)
            except (TypeError, ValueError) as exc:
                raise invalid_body(str(exc)) from None
        return json_response(rt.faults.snapshot())

    async def admin_rate_limit(request: Request) -> Response:
        if request.method == "POST":
            body = await read_json(request)
            if not isinstance(body, dict) or not set(body) <= {"per_minute", "multiplier"}:
                raise invalid_body("expected {'per_minute': int | null, 'multiplier': int}")
            try:
                rt.limiter.configure(
                    per_minute=body.get("per_minute"), multiplier=body.get("multiplier", 1)
                )
            except (TypeError, ValueError) as exc:
                raise invalid_body(str(exc)) from None
        return json_response({"limit_per_minute": rt.limiter.limit})

    async def admin_deliveries(request: Request) -> Response:
        return json_response({"data": bank.deliveries()})

    async def admin_events(request: Request) -> Response:
        return json_response({"data": bank.webhook_events()})

    async def admin_balances(request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict) or set(body) != {"currency", "available"}:
            raise invalid_body("expected {'currency': 'USD', 'available': '100.00'}")
        try:
            return json_response(bank.set_balance(str(body["currency"]), str(body["available"])))
        except ArithmeticError:
            raise invalid_body("available must be a decimal string") from None

    async def admin_reset(request: Request) -> Response:
        bank.reset()
        rt.faults.clear()
        return json_response({"ok": True})

    routes = [
        Route("/v1/balances", list_balances, methods=["GET"]),
        Route("/v1/balances/{currency}", get_balance, methods=["GET"]),
        Route("/v1/beneficiaries", create_beneficiary, methods=["POST"]),
        Route("/v1/beneficiaries", list_beneficiaries, methods=["GET"]),
        Route("/v1/beneficiaries/{id}", get_beneficiary, methods=["GET"]),
        Route("/v1/beneficiaries/{id}/instruments", create_instrument, methods=["POST"]),
        Route("/v1/beneficiaries/{id}/instruments", list_beneficiary_instruments, methods=["GET"]),
        Route("/v1/instruments", list_instruments, methods=["GET"]),
        Route("/v1/instruments/{id}", get_instrument, methods=["GET"]),
        Route("/v1/payouts", create_payout, methods=["POST"]),
        Route("/v1/payouts", list_payouts, methods=["GET"]),
        Route("/v1/payouts/{id}", get_payout, methods=["GET"]),
        Route("/v1/payouts/{id}/events", payout_events, methods=["GET"]),
        Route("/v1/payouts/{id}/cancel", cancel_payout, methods=["POST"]),
        Route("/v1/webhooks", create_webhook, methods=["POST"]),
        Route("/v1/webhooks", list_webhooks, methods=["GET"]),
        Route("/v1/webhooks/{id}", get_webhook, methods=["GET"]),
        Route("/v1/webhooks/{id}/secret/rotate", rotate_webhook, methods=["POST"]),
        Route("/_sandbox/health", admin_health, methods=["GET"]),
        Route("/_sandbox/ledger", admin_ledger, methods=["GET"]),
        Route("/_sandbox/clock", admin_clock, methods=["GET"]),
        Route("/_sandbox/clock/advance", admin_advance, methods=["POST"]),
        Route("/_sandbox/tick", admin_tick, methods=["POST"]),
        Route("/_sandbox/faults", admin_faults, methods=["GET", "POST", "DELETE"]),
        Route("/_sandbox/rate-limit", admin_rate_limit, methods=["GET", "POST"]),
        Route("/_sandbox/webhooks/deliveries", admin_deliveries, methods=["GET"]),
        Route("/_sandbox/webhooks/events", admin_events, methods=["GET"]),
        Route("/_sandbox/balances", admin_balances, methods=["POST"]),
        Route("/_sandbox/reset", admin_reset, methods=["POST"]),
        *rt.oauth.routes(),  # /oauth/token, /.well-known/jwks.json
    ]

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiProblem)
        response = json_response(exc.envelope(), exc.status)
        response.headers.update(exc.headers)
        return response

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        message = {404: "no such endpoint", 405: "method not allowed on this endpoint"}.get(
            exc.status_code, str(exc.detail)
        )
        return json_response(error_envelope(code, message), exc.status_code)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(rt.run_ticker()) if run_ticker else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await rt.aclose()

    starlette = Starlette(
        routes=routes,
        exception_handlers={ApiProblem: on_problem, HTTPException: on_http},
        lifespan=lifespan,
    )
    return Gateway(starlette, rt)

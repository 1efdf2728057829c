"""``/_sandbox``: the operator's surface — clock, faults, rate limit, books, reset."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .._util import iso
from ..problems import invalid_body
from ._common import json_response, read_json, runtime


async def health(request: Request) -> Response:
    """``GET /_sandbox/health``."""
    return json_response({"ok": True, "now": iso(runtime(request).clock.time())})


async def ledger(request: Request) -> Response:
    """``GET /_sandbox/ledger``."""
    return json_response({"data": runtime(request).bank.ledger()})


async def batches(request: Request) -> Response:
    """``GET /_sandbox/batches``: every batch uploaded, oldest first."""
    return json_response({"data": runtime(request).bank.batches.all()})


async def clock(request: Request) -> Response:
    """``GET /_sandbox/clock``."""
    clk = runtime(request).clock
    return json_response({"now": clk.now().isoformat(), "manual": clk.manual, "unix": clk.time()})


async def advance(request: Request) -> Response:
    """``POST /_sandbox/clock/advance``: move the clock, then tick."""
    rt = runtime(request)
    body = await read_json(request)
    seconds = body.get("seconds")
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        raise invalid_body("seconds must be a non-negative number")
    rt.advance_clock(float(seconds))
    result = await rt.tick()
    return json_response({**result, "now": result["now"].isoformat()})


async def tick(request: Request) -> Response:
    """``POST /_sandbox/tick``."""
    result = await runtime(request).tick()
    return json_response({**result, "now": result["now"].isoformat()})


async def faults(request: Request) -> Response:
    """``GET`` / ``POST`` / ``DELETE /_sandbox/faults``."""
    rt = runtime(request)
    if request.method == "DELETE":
        rt.faults.clear()
    elif request.method == "POST":
        body = await read_json(request)
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


async def rate_limit(request: Request) -> Response:
    """``GET`` / ``POST /_sandbox/rate-limit``."""
    rt = runtime(request)
    if request.method == "POST":
        body = await read_json(request)
        if not set(body) <= {"per_minute", "multiplier"}:
            raise invalid_body("expected {'per_minute': int | null, 'multiplier': int}")
        try:
            rt.limiter.configure(
                per_minute=body.get("per_minute"), multiplier=body.get("multiplier", 1)
            )
        except (TypeError, ValueError) as exc:
            raise invalid_body(str(exc)) from None
    return json_response({"limit_per_minute": rt.limiter.limit})


async def deliveries(request: Request) -> Response:
    """``GET /_sandbox/webhooks/deliveries``."""
    return json_response({"data": runtime(request).bank.deliveries()})


async def events(request: Request) -> Response:
    """``GET /_sandbox/webhooks/events``."""
    return json_response({"data": runtime(request).bank.webhook_events()})


async def balances(request: Request) -> Response:
    """``POST /_sandbox/balances``: set one currency's available funds."""
    body = await read_json(request)
    if set(body) != {"currency", "available"}:
        raise invalid_body("expected {'currency': 'USD', 'available': '100.00'}")
    try:
        bank = runtime(request).bank
        return json_response(bank.set_balance(str(body["currency"]), str(body["available"])))
    except ArithmeticError:
        raise invalid_body("available must be a decimal string") from None


async def reset(request: Request) -> Response:
    """``POST /_sandbox/reset``: forget everything, reload balances, clear faults."""
    rt = runtime(request)
    rt.bank.reset()
    rt.faults.clear()
    return json_response({"ok": True})

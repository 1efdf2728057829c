"""``/v1/balances``: what the merchant holds, per currency."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..problems import ApiProblem
from ._common import CURRENCY, json_response, runtime


async def list_balances(request: Request) -> Response:
    """``GET /v1/balances``."""
    return json_response({"data": runtime(request).bank.list_balances()})


async def get_balance(request: Request) -> Response:
    """``GET /v1/balances/{currency}``."""
    currency: str = request.path_params["currency"]
    if not CURRENCY.match(currency):
        raise ApiProblem(404, "balance_not_found", "balance not found")
    return json_response(runtime(request).bank.get_balance(currency))

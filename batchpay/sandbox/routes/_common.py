"""What every handler shares: the runtime on the app's state, JSON in and out, query checks."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, Literal, overload

from starlette.requests import Request
from starlette.responses import Response

from .._util import dumps, parse_iso, parse_json
from ..bank.paging import Listing
from ..problems import ApiProblem, invalid_body, invalid_parameter
from ..runtime import Runtime

Handler = Callable[[Request], Awaitable[Response]]

IDS = {
    "ben": re.compile(r"^ben_[a-zA-Z0-9]+$"),
    "ins": re.compile(r"^ins_[a-zA-Z0-9]+$"),
    "pay": re.compile(r"^pay_[a-zA-Z0-9]+$"),
    "bat": re.compile(r"^bat_[a-zA-Z0-9]+$"),
    "wbh": re.compile(r"^wbh_[a-zA-Z0-9]+$"),
}
COUNTRY = re.compile(r"^[A-Z]{2}$")
CURRENCY = re.compile(r"^[A-Z]{3}$")


def runtime(request: Request) -> Runtime:
    """The sandbox runtime the app was built with (``app.state.runtime``)."""
    rt: Runtime = request.app.state.runtime
    return rt


def json_response(data: Any, status: int = 200) -> Response:
    """A JSON answer in the compact form the API uses (a list page's as it renders itself)."""
    body = data.body() if isinstance(data, Listing) else dumps(data)
    return Response(body, status_code=status, media_type="application/json")


@overload
async def read_json(request: Request, *, required: Literal[True] = True) -> dict[str, Any]: ...
@overload
async def read_json(request: Request, *, required: bool) -> dict[str, Any] | None: ...
async def read_json(request: Request, *, required: bool = True) -> dict[str, Any] | None:
    """The request body, a JSON object; 400 ``invalid_request_body`` when it is not one.

    An empty body is None when the body is optional (``required=False``).
    """
    raw = await request.body()
    if not raw.strip():
        if required:
            raise invalid_body("a JSON request body is required")
        return None
    ctype = request.headers.get("content-type")
    if ctype and ctype.split(";")[0].strip().lower() != "application/json":
        raise invalid_body("content type must be application/json")
    try:
        body = parse_json(raw)
    except ValueError as exc:
        raise invalid_body(str(exc)) from None
    if not isinstance(body, dict):
        raise invalid_body("request body must be a JSON object")
    return body


def query_id(request: Request, name: str, prefix: str) -> str | None:
    """Query parameter ``name``, which must be an id starting ``{prefix}_`` when present."""
    value = request.query_params.get(name)
    if value is not None and not IDS[prefix].match(value):
        raise invalid_parameter(name, f"must be an id starting with {prefix}_")
    return value


def query_match(request: Request, name: str, regex: re.Pattern[str], what: str) -> str | None:
    """Query parameter ``name``, which must match ``regex`` (described as ``what``)."""
    value = request.query_params.get(name)
    if value is not None and not regex.match(value):
        raise invalid_parameter(name, f"must be {what}")
    return value


def query_time(request: Request, name: str) -> float | None:
    """Query parameter ``name`` as Unix seconds, when it is an RFC 3339 date-time."""
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        return parse_iso(value)
    except ValueError:
        raise invalid_parameter(name, "must be an RFC 3339 date-time") from None


def path_id(request: Request, prefix: str, kind: str) -> str:
    """The ``{id}`` path parameter; a malformed one is the resource's 404, as a real id is."""
    value: str = request.path_params["id"]
    if not IDS[prefix].match(value):
        raise ApiProblem(404, f"{kind}_not_found", f"{kind.replace('_', ' ')} not found")
    return value

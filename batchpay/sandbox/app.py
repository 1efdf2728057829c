"""The sandbox ASGI app: the route table as Starlette routes, behind the gateway."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from .gateway import Gateway
from .problems import ApiProblem, error_envelope
from .routes import ROUTES
from .routes._common import json_response
from .runtime import Runtime


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiProblem)
    response = json_response(exc.envelope(), exc.status)
    response.headers.update(exc.headers)
    return response


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    message = {404: "no such endpoint", 405: "method not allowed on this endpoint"}.get(
        exc.status_code, str(exc.detail)
    )
    return json_response(error_envelope(code, message), exc.status_code)


def build_app(rt: Runtime, *, background_ticker: bool | None = None) -> ASGIApp:
    """The sandbox ASGI app: Starlette routes behind the :class:`Gateway`."""
    run_ticker = (not rt.config.manual_clock) if background_ticker is None else background_ticker

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
        routes=[Route(path, handler, methods=[method]) for method, path, handler in ROUTES],
        exception_handlers={ApiProblem: _on_problem, HTTPException: _on_http},
        lifespan=lifespan,
    )
    starlette.state.runtime = rt
    return Gateway(starlette, rt)

"""The sandbox ASGI app: the route table as Starlette routes, behind the gateway."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from .gateway import Gateway
from .problems import ApiProblem, error_envelope
from .routes import ROUTES, UNIMPLEMENTED, Handler
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
    response = json_response(error_envelope(code, message), exc.status_code)
    allow = (exc.headers or {}).get("Allow")
    if allow is not None:
        # Starlette joins a set; a stable order reads better and tests can compare it.
        response.headers["Allow"] = ", ".join(sorted(m.strip() for m in allow.split(",")))
    return response


def _by_method(handlers: Mapping[str, Handler]) -> Handler:
    """One endpoint for every method of a path, so a 405 can name them all in ``Allow``."""

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return endpoint


async def _no_such_endpoint(request: Request) -> Response:
    raise HTTPException(404)


_ANY_METHOD = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _routes() -> list[Route]:
    by_path: dict[str, dict[str, Handler]] = {}
    for method, path, handler in ROUTES:
        by_path.setdefault(path, {})[method] = handler
    # First, so that no parametrised route reads an unimplemented path as an id.
    unimplemented = [Route(path, _no_such_endpoint, methods=_ANY_METHOD) for path in UNIMPLEMENTED]
    return unimplemented + [
        Route(path, _by_method(handlers), methods=list(handlers))
        for path, handlers in by_path.items()
    ]


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
        routes=[*_routes(), *rt.oauth.routes()],  # + /oauth/token, /.well-known/jwks.json
        exception_handlers={ApiProblem: _on_problem, HTTPException: _on_http},
        lifespan=lifespan,
    )
    starlette.state.runtime = rt
    return Gateway(starlette, rt)

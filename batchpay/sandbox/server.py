"""Serving a sandbox over a real socket with uvicorn."""

from __future__ import annotations

import logging
import socket

import uvicorn

from .gateway import LostResponse
from .sandbox import Sandbox


class _LostResponseFilter(logging.Filter):
    """Turn uvicorn's traceback for an injected lost response into one quiet line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, LostResponse):
            record.msg = "sandbox fault: dropped the connection after commit (lost_response)"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            record.levelno = logging.INFO
            record.levelname = "INFO"
            return logging.getLogger("uvicorn.error").isEnabledFor(logging.INFO)
        return True


def install_log_filter() -> None:
    """Quiet uvicorn's error log for injected lost responses (idempotent)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _LostResponseFilter) for f in logger.filters):
        logger.addFilter(_LostResponseFilter())


def uvicorn_config(
    sandbox: Sandbox, *, host: str = "127.0.0.1", port: int = 8765, log_level: str = "info"
) -> uvicorn.Config:
    """The uvicorn configuration the sandbox is served with."""
    install_log_filter()
    return uvicorn.Config(
        sandbox.app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        http="httptools",  # a dependency: C parsing, not h11's pure Python (scripts/bench_run.py)
        timeout_graceful_shutdown=1,
        date_header=False,  # the sandbox states its own (possibly moved) clock
    )


def serve(
    sandbox: Sandbox,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    log_level: str = "info",
    sock: socket.socket | None = None,
) -> None:
    """Serve ``sandbox`` until interrupted (blocking)."""
    server = uvicorn.Server(uvicorn_config(sandbox, host=host, port=port, log_level=log_level))
    server.run(sockets=[sock] if sock is not None else None)

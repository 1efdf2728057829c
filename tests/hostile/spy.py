"""Watch every HTTP request batchpay makes, whatever the transport, and run the CLI in isolation."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner, Result

from batchpay.cli import main


@dataclass
class RequestSpy:
    """Every request that reached an httpx client's ``send``: what "nothing was sent" checks."""

    requests: list[httpx.Request] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        """``METHOD path`` of each request, in order."""
        return [f"{r.method} {r.url.path}" for r in self.requests]

    @property
    def writes(self) -> list[str]:
        """The requests that could move money or create anything (every method but GET)."""
        return [line for line in self.lines if not line.startswith("GET ")]


@contextmanager
def spy_on_requests() -> Iterator[RequestSpy]:
    """Record each request every ``httpx.AsyncClient``/``httpx.Client`` sends (and each the
    API client hands straight to its network transport), then send it."""
    spy = RequestSpy()
    async_send = httpx.AsyncClient.send
    sync_send = httpx.Client.send

    async def record_async(self: httpx.AsyncClient, request: httpx.Request, **kw: Any) -> Any:
        spy.requests.append(request)
        return await async_send(self, request, **kw)

    def record_sync(self: httpx.Client, request: httpx.Request, **kw: Any) -> Any:
        spy.requests.append(request)
        return sync_send(self, request, **kw)

    # The client sends API-key requests over the network straight to its transport,
    # past httpx's client: watch that seam too (a request takes one path or the other).
    from batchpay.client.base import BaseClient
    from batchpay.client.transport import Sent

    direct_send = BaseClient._send_direct

    async def record_direct(self: BaseClient, request: Sent) -> Any:
        # Seen as the httpx.Request it stands for (headers case-insensitive, the same bytes).
        seen = httpx.Request(request.method, request.url, headers=request.headers,
                             content=request.content)  # fmt: skip
        spy.requests.append(seen)
        return await direct_send(self, request)

    httpx.AsyncClient.send = record_async  # type: ignore[method-assign]
    httpx.Client.send = record_sync  # type: ignore[method-assign]
    BaseClient._send_direct = record_direct  # type: ignore[method-assign]
    try:
        yield spy
    finally:
        httpx.AsyncClient.send = async_send  # type: ignore[method-assign]
        httpx.Client.send = sync_send  # type: ignore[method-assign]
        BaseClient._send_direct = direct_send  # type: ignore[method-assign]


def clean_env(home: Path, **extra: str | None) -> dict[str, str | None]:
    """Environment for one CLI run: no BATCHPAY_* setting but ``BATCHPAY_HOME`` and ``extra``."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("BATCHPAY_")}
    env["BATCHPAY_HOME"] = str(home / ".batchpay")
    env.update(extra)
    return env


@dataclass(frozen=True)
class CliRun:
    """One ``batchpay`` invocation: its result and the requests it made."""

    result: Result
    requests: RequestSpy

    @property
    def exit_code(self) -> int:
        """The process exit code."""
        return self.result.exit_code

    @property
    def stderr(self) -> str:
        """What the user read on stderr."""
        return self.result.stderr

    @property
    def output(self) -> str:
        """stdout and stderr together."""
        return self.result.output


def invoke(home: Path, args: list[str], env: Mapping[str, str | None] | None = None) -> CliRun:
    """Run ``batchpay ARGS`` with ``home`` as working directory, watching its requests."""
    runner = CliRunner()
    cwd = Path.cwd()
    os.chdir(home)
    try:
        with spy_on_requests() as spy:
            result = runner.invoke(main, args, env=dict(env or clean_env(home)))
    finally:
        os.chdir(cwd)
    return CliRun(result, spy)


def journal_runs(home: Path) -> int:
    """How many runs the journal under ``home`` holds (0 when it was never created)."""
    path = home / ".batchpay" / "journal.db"
    if not path.exists():
        return 0
    with closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT count(*) FROM runs").fetchone()[0])


def no_traceback(text: str) -> bool:
    """Whether the user was spared a traceback and an internal-error message."""
    return "Traceback" not in text and "internal error" not in text

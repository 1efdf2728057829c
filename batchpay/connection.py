"""The connection a run works through: the API client, the journal, both clocks.

``connect`` is the one factory: it opens the client for the settings' world (the embedded
sandbox when nothing is configured), with credentials made by :func:`config.credentials_for`,
records every HTTP attempt in the journal and learns the provider's clock from its answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from batchpay.client import AntonClient, CallRecord
from batchpay.clocks import ProviderClock, utcnow
from batchpay.config import Mode, Settings, credentials_for
from batchpay.journal import Journal
from batchpay.ratelimit import RateLimiter


@dataclass
class Connection:
    """A live client plus the journal and clock a run uses."""

    settings: Settings
    journal: Journal
    client: AntonClient
    clock: Callable[[], datetime]
    provider_clock: ProviderClock
    run_id: str | None = None
    # A new run's look at the provider's ledger, started beside its start-up
    # (ledger.LedgerLook); the per-row strategy awaits it before sending anything.
    ledger_look: Any = None


@contextlib.asynccontextmanager
async def connect(
    settings: Settings,
    journal: Journal,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], datetime] = utcnow,
    concurrency: int | None = None,
) -> AsyncIterator[Connection]:
    """Open the API client for ``settings`` (the embedded sandbox when configured so)."""
    sandbox = None
    if transport is None and settings.mode is Mode.EMBEDDED:
        from batchpay.sandbox import Sandbox, SandboxConfig

        assert settings.sandbox_state_path is not None
        settings.sandbox_state_path.parent.mkdir(parents=True, exist_ok=True)
        sandbox = Sandbox(SandboxConfig(state_path=str(settings.sandbox_state_path)))
        transport = sandbox.transport()
    conn_holder: list[Connection] = []
    provider_clock = ProviderClock(clock)

    def on_call(call: CallRecord) -> None:
        provider_clock.observe(call.server_date)
        run_id = conn_holder[0].run_id if conn_holder else None
        journal.record_call(run_id, call_record_dict(call))

    client = AntonClient(
        settings.api_url,
        credentials_for(settings),
        transport=transport,
        on_call=on_call,
        max_concurrency=concurrency,
        timeout=settings.http_timeout,
        rate_limiter=_rate_limiter(journal, settings),
    )
    conn = Connection(
        settings=settings,
        journal=journal,
        client=client,
        clock=clock,
        provider_clock=provider_clock,
    )
    conn_holder.append(conn)
    try:
        async with client:
            yield conn
    finally:
        if sandbox is not None:
            close = getattr(sandbox, "aclose", None) or getattr(sandbox, "close", None)
            if close is not None:
                maybe = close()
                if asyncio.iscoroutine(maybe):
                    await maybe


def _rate_limiter(journal: Journal, settings: Settings) -> RateLimiter | None:
    """On a shared (PostgreSQL) journal, the provider's rate limit is shared by all workers."""
    if journal.dialect != "postgresql":
        return None
    from batchpay.workers import SharedRateLimiter

    return SharedRateLimiter(journal, settings.environment)


def call_record_dict(call: CallRecord) -> dict[str, Any]:
    """A CallRecord as the journal stores it."""
    started = call.started_at
    return {
        "started_at": started.isoformat() if isinstance(started, datetime) else str(started),
        "method": call.method,
        "path": call.path,
        "status": call.status,
        "error_code": call.error_code,
        "request_id": call.request_id,
        "idempotency_key": call.idempotency_key,
        "attempt": call.attempt,
        "duration_ms": call.duration_ms,
    }

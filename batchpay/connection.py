"""The connection a run works through: the API client, the journal, both clocks.

``connect`` is the one factory: it opens the client for the settings' world (the embedded
sandbox when nothing is configured), with credentials made by :func:`config.credentials_for`,
records every HTTP attempt in the journal and learns the provider's clock from its answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from batchpay.client import AntonClient, CallRecord
from batchpay.clocks import ProviderClock, utcnow
from batchpay.config import Mode, Settings, credentials_for
from batchpay.errors import JournalError
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
    untagged_calls: list[dict[str, Any]] = field(default_factory=list)
    """The look's calls made before the run existed, written with the run's id once it is
    recorded (one transaction, not a commit per page while the look reads)."""
    final_check: Any = None
    """The per-row strategy's check after sending (another home's batch made meanwhile?),
    left running for the pipeline to await — True when it cancelled a second payout — so the
    report is built while its answer travels (``pipeline.run_async``)."""

    def adopt_calls(self) -> None:
        """Write the calls the run's ledger look made before the run was recorded, as the
        run's (or as no run's, when the connection closes without one)."""
        if self.untagged_calls:
            calls, self.untagged_calls = self.untagged_calls, []
            self.journal.record_calls(self.run_id, calls)


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
        conn = conn_holder[0] if conn_holder else None
        run_id = conn.run_id if conn is not None else None
        if (
            run_id is None
            and conn is not None
            and conn.ledger_look is not None
            and (call.method == "GET" and call.path in _LOOK_PATHS)
        ):
            # The ledger look of a run not recorded yet (its pages read GETs): the run
            # adopts these calls once it is recorded.
            conn.untagged_calls.append(call_record_dict(call))
            return
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
        with contextlib.suppress(JournalError):  # (not over the journal's own error)
            conn.adopt_calls()  # a look whose run was never recorded: its calls kept
        if sandbox is not None:
            close = getattr(sandbox, "aclose", None) or getattr(sandbox, "close", None)
            if close is not None:
                maybe = close()
                if asyncio.iscoroutine(maybe):
                    await maybe


# What a ledger look asks for (ledger.LedgerLook): the foreign-batch look-up, the sweep.
_LOOK_PATHS = frozenset({"/v1/batches", "/v1/payouts"})


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

"""End-to-end fixtures: a manual-clock sandbox in process, settings and file builders."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from batchpay.client import set_testing
from batchpay.config import Mode, Secret, Settings
from batchpay.sandbox import DEFAULT_API_KEY, Sandbox, SandboxConfig
from batchpay.testing import payout_row as payee
from batchpay.testing import write_csv

__all__ = ["payee", "run_kwargs", "write_csv"]


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    """Retries and the rate limiter do not sleep in tests."""
    set_testing(True)
    yield
    set_testing(False)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """A fresh sandbox whose clock moves only when the test says so."""
    sb = Sandbox(SandboxConfig(manual_clock=True, rate_limit_per_minute=None))
    yield sb
    await sb.aclose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a sandbox reached through an injected transport."""
    return Settings(
        mode=Mode.SANDBOX,
        api_url="http://sandbox.test",
        api_key=Secret(DEFAULT_API_KEY),
        home=tmp_path / ".batchpay",
        journal_path=tmp_path / ".batchpay" / "journal.db",
    )


def run_kwargs(sb: Sandbox, settings: Settings, tmp_path: Path, **options: Any) -> dict[str, Any]:
    """Keyword arguments for pipeline.run_async against ``sb``."""
    from batchpay.pipeline import RunOptions

    async def advance(seconds: float) -> None:
        await sb.advance(max(seconds, 1.0))

    return {
        "settings": settings,
        "options": RunOptions(out_dir=tmp_path / "reports", **options),
        "transport": sb.transport(),
        "clock": sb.clock.now,
        "track_sleep": advance,
    }

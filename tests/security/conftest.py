"""Fixtures for the security tests: settings for an in-process sandbox, no backoff sleeps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from batchpay.client import set_testing
from batchpay.config import Mode, Secret, Settings
from batchpay.sandbox import DEFAULT_API_KEY, Sandbox, SandboxConfig


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
    """A fresh in-process sandbox whose clock moves only when the test says so."""
    sb = Sandbox(SandboxConfig(manual_clock=True, rate_limit_per_minute=None))
    yield sb
    await sb.aclose()


def sandbox_settings(home: Path, key: str = DEFAULT_API_KEY, **kw: object) -> Settings:
    """Settings for a sandbox reached through an injected transport."""
    return Settings(
        mode=Mode.SANDBOX,
        api_url="http://sandbox.test",
        api_key=Secret(key),
        home=home / ".batchpay",
        journal_path=home / ".batchpay" / "journal.db",
        **kw,  # type: ignore[arg-type]
    )

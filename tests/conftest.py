"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from batchpay.sandbox import Sandbox, SandboxConfig


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (uvicorn and the sandbox target asyncio)."""
    return "asyncio"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """A fresh in-memory sandbox, no rate limit, whose clock moves only when a test says so."""
    sb = Sandbox(SandboxConfig(manual_clock=True, rate_limit_per_minute=None))
    yield sb
    await sb.aclose()

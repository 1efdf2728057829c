"""Fixtures for the batch tests: a manual-clock sandbox and a client wired to it in process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from batchpay.sandbox import Sandbox, SandboxConfig


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio."""
    return "asyncio"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """A fresh in-memory sandbox whose clock moves only when a test says so."""
    sb = Sandbox(SandboxConfig(manual_clock=True))
    yield sb
    await sb.aclose()


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to ``sandbox`` in process with the default test key."""
    async with sandbox.client() as c:
        yield c

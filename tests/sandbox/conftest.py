"""Fixtures for the sandbox tests: the root's manual-clock sandbox and client, with the
provider's own default rate limit."""

from __future__ import annotations

import httpx
import pytest

from batchpay.sandbox import SandboxConfig


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    """A manual-clock sandbox with the provider's default limits."""
    return SandboxConfig(manual_clock=True)


@pytest.fixture
async def payee(client: httpx.AsyncClient) -> tuple[str, str]:
    """A beneficiary with a uk_bank instrument: (beneficiary_id, instrument_id)."""
    from .helpers import make_payee

    return await make_payee(client)

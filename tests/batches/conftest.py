"""Fixtures for the batch tests: the root's manual-clock sandbox and client, with the
provider's own default rate limit."""

from __future__ import annotations

import pytest

from batchpay.sandbox import SandboxConfig


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    """A manual-clock sandbox with the provider's default limits."""
    return SandboxConfig(manual_clock=True)

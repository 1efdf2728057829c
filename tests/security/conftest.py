"""Fixtures for the security tests: settings for an in-process sandbox, no backoff sleeps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from batchpay.client import set_testing
from batchpay.testing import sandbox_settings

__all__ = ["sandbox_settings"]


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    """Retries and the rate limiter do not sleep in tests."""
    set_testing(True)
    yield
    set_testing(False)

"""Fixtures for the accounting tests: an in-process sandbox, settings, no backoff sleeps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from batchpay.client import set_testing
from batchpay.config import Settings
from batchpay.testing import sandbox_settings


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    """Retries and the rate limiter do not sleep in tests."""
    set_testing(True)
    yield
    set_testing(False)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for the in-process sandbox, state under ``tmp_path``."""
    return sandbox_settings(tmp_path)

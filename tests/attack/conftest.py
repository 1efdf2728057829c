"""End-to-end fixtures: a manual-clock sandbox in process, settings and file builders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from batchpay.client import set_testing
from batchpay.config import Settings
from batchpay.testing import payout_row as payee
from batchpay.testing import run_kwargs, sandbox_settings, write_csv

__all__ = ["payee", "run_kwargs", "write_csv"]


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    """Retries and the rate limiter do not sleep in tests."""
    set_testing(True)
    yield
    set_testing(False)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a sandbox reached through an injected transport."""
    return sandbox_settings(tmp_path)

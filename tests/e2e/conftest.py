"""End-to-end fixtures: a manual-clock sandbox in process, settings and file builders."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from batchpay.client import set_testing
from batchpay.config import Settings
from batchpay.testing import payout_row as payee
from batchpay.testing import run_kwargs, sandbox_oauth_settings, sandbox_settings, write_csv

__all__ = ["SettingsIn", "payee", "run_kwargs", "write_csv"]

SettingsIn = Callable[[Path], Settings]


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    """Retries and the rate limiter do not sleep in tests."""
    set_testing(True)
    yield
    set_testing(False)


@pytest.fixture(params=["keys", "oauth"])
def auth_mode(request: pytest.FixtureRequest) -> str:
    """Every end-to-end test that uses the sandbox or the settings runs twice: with an API
    key, and with the OAuth client and its DPoP key against a sandbox that refuses keys."""
    return str(request.param)


@pytest.fixture
def settings_in(auth_mode: str) -> SettingsIn:
    """Settings with their state under a given home, in ``auth_mode`` (for tests that use
    several homes against one sandbox)."""
    return sandbox_oauth_settings if auth_mode == "oauth" else sandbox_settings


@pytest.fixture
def settings(tmp_path: Path, settings_in: SettingsIn) -> Settings:
    """Settings for a sandbox reached through an injected transport, in ``auth_mode``."""
    return settings_in(tmp_path)

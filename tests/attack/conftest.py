"""End-to-end fixtures: a manual-clock sandbox in process, settings and file builders."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchpay.client import set_testing
from batchpay.config import Settings
from batchpay.journal.target import PostgresURL
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


@pytest.fixture(params=["sqlite", "postgresql"])
def home_b(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Home B's settings (``tmp_path / "b"``): its journal a SQLite file, or a PostgreSQL
    database (where a run is shared by workers, ``batchpay.workers``: the same guards must
    hold there)."""
    settings = sandbox_settings(tmp_path / "b")
    if request.param == "sqlite":
        return settings
    url: PostgresURL = request.getfixturevalue("postgres_url")
    return dataclasses.replace(settings, journal_path=url)

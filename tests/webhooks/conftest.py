"""Fixtures: a journal with one known payout and a receiver app on a fixed clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from batchpay.retry import is_testing, set_testing
from batchpay.webhooks import create_receiver

from .helpers import NOW, SECRET, make_journal


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    """The API client does not sleep between retries in these tests."""
    before = is_testing()
    set_testing(True)
    yield
    set_testing(before)


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    """A journal holding one created payout, KNOWN_PAYOUT."""
    return make_journal(tmp_path / "journal.db")


@pytest.fixture
async def receiver(journal_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The receiver app (secret SECRET, clock fixed at NOW) behind an in-process client."""
    app = create_receiver(journal_path, [SECRET], clock=lambda: float(NOW))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        yield client

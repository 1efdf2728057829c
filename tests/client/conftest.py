"""Fixtures for the API client tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from batchpay.retry import is_testing, set_testing


@pytest.fixture
def testing_mode() -> Iterator[None]:
    """Turn the client's default waits off for one test, then restore the previous state."""
    before = is_testing()
    set_testing(True)
    yield
    set_testing(before)

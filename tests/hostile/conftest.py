"""Fixtures for the hostile-file tests: an isolated home, a layout with custom limits."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path

import pytest

from batchpay.client import set_testing


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    """Retries and the rate limiter do not sleep in tests."""
    set_testing(True)
    yield
    set_testing(False)


def layout_with_limits(folder: Path, limits: Mapping[str, int]) -> Path:
    """A copy of the packaged layout with some ``[limits]`` changed, as a user would write it."""
    text = resources.files("batchpay").joinpath("data/layout.toml").read_text("utf-8")
    for name, value in limits.items():
        text, n = re.subn(rf"(?m)^{name} = [0-9]+", f"{name} = {value}", text)
        assert n == 1, name
    path = folder / "layout.toml"
    path.write_text(text, encoding="utf-8")
    return path

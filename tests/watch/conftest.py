"""Watch fixtures: a drop folder, a manual-clock sandbox, and a watcher bound to both."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from batchpay.client import set_testing
from batchpay.config import Settings
from batchpay.pipeline import RunOptions
from batchpay.sandbox import Sandbox
from batchpay.testing import payout_row, sandbox_settings, write_csv
from batchpay.watch import Folder, LocalFolder, Watcher, WatchOptions

DAY = date(2026, 3, 14)


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    """Retries and the rate limiter do not sleep in tests."""
    set_testing(True)
    yield
    set_testing(False)


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    """An empty local drop folder."""
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a sandbox reached through an injected transport."""
    return sandbox_settings(tmp_path)


def make_watcher(folder: Folder, sb: Sandbox, settings: Settings, **options: Any) -> Watcher:
    """A watcher on ``folder`` paying through ``sb``; answers dated DAY."""
    run = RunOptions(skip_balance_check=True, out_dir=settings.home / "reports")
    return Watcher(
        folder,
        settings,
        WatchOptions(run=run, **options),
        transport=sb.transport(),
        clock=sb.clock.now,
        today=lambda: DAY,
    )


def drop(folder: Path, name: str, rows: list[dict[str, str]], *, marker: str | None = "") -> Path:
    """Write a payout CSV into ``folder`` (and its marker with ``marker`` as content)."""
    path = write_csv(folder / name, rows)
    if marker is not None:
        (folder / f"{name}.ok").write_text(marker)
    return path


def sha256_of(path: Path) -> str:
    """The file's SHA-256 in hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rows(start: int, n: int) -> list[dict[str, str]]:
    """``n`` valid payout rows starting at ``start``."""
    return [payout_row(i) for i in range(start, start + n)]


__all__ = ["DAY", "LocalFolder", "drop", "make_watcher", "rows", "sha256_of"]

"""The sandbox clock: wall time plus an offset, or a manual clock that moves only when told."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class SandboxClock:
    """Sandbox time. Every timestamp, expiry and due transition reads this clock.

    In wall mode it is real UTC time plus whatever ``advance`` added; in manual
    mode it stands still at ``start`` (default: the moment it was made, to the
    whole second) until ``advance`` moves it.
    """

    def __init__(self, *, manual: bool = False, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._manual = manual
        self._offset = 0.0
        if start is not None and start.tzinfo is None:
            raise ValueError("clock start must be timezone-aware")
        self._frozen = start.timestamp() if start is not None else float(int(time.time()))

    @property
    def manual(self) -> bool:
        """Whether the clock moves only when told."""
        return self._manual

    def time(self) -> float:
        """Sandbox time as Unix seconds."""
        with self._lock:
            base = self._frozen if self._manual else time.time()
            return base + self._offset

    def now(self) -> datetime:
        """Sandbox time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.time(), tz=UTC)

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward by ``seconds`` and return the new time."""
        if seconds < 0:
            raise ValueError("the sandbox clock does not go backwards")
        with self._lock:
            self._offset += seconds
        return self.now()

"""Clocks: the local one, and the provider's as its answers state it.

Whether the provider still remembers an idempotency key is decided on the provider's
clock, never on the local one: a machine whose clock is an hour behind would otherwise
resend a key the provider forgot, and create a second payout.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    """Current time, aware, UTC."""
    return datetime.now(UTC)


class ProviderClock:
    """The provider's time, learned from the ``Date`` header of each answer.

    Until an answer has stated it, the local clock stands in (a provider that never
    sends ``Date`` leaves nothing better); :attr:`observed` says which is in use.
    """

    def __init__(self, local: Callable[[], datetime] = utcnow) -> None:
        self.local = local
        self._offset: timedelta | None = None

    @property
    def observed(self) -> bool:
        """Whether the provider has stated its clock in this process."""
        return self._offset is not None

    def observe(self, server_date: datetime | None) -> None:
        """Learn the offset from one answer's ``Date`` (the newest answer wins)."""
        if server_date is not None:
            self._offset = server_date - self.local()

    def now(self) -> datetime:
        """The provider's time now (the local time when it has not stated its own)."""
        return self.local() + (self._offset or timedelta(0))

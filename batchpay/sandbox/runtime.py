"""The running parts of one sandbox, wired together (the app and the handle share them)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .bank import Bank
from .clock import SandboxClock
from .config import SandboxConfig
from .faults import Faults
from .oauth import OAuthServer
from .ratelimit import RateLimiter
from .store import Store
from .webhooks import Deliverer

log = logging.getLogger("batchpay.sandbox")


class Runtime:
    """Clock, store, books, limiter, faults and webhook sender of one sandbox."""

    def __init__(self, config: SandboxConfig) -> None:
        config.validate()
        self.config = config
        self.clock = SandboxClock(manual=config.manual_clock, start=config.clock_start)
        self.store = Store(config.state_path)
        # A restarted sandbox keeps the time it was moved on: a provider's clock never goes
        # back, and clients rely on that (their ledger high-water marks are its timestamps).
        saved = self.store.one("SELECT value FROM meta WHERE key = 'clock_offset'")
        if saved is not None:
            self.clock.advance(float(saved["value"]))
        self.bank = Bank(self.store, self.clock, config)
        self.limiter = RateLimiter(
            self.clock, config.rate_limit_per_minute, config.rate_limit_multiplier
        )
        self.faults = Faults(config.faults)
        self.deliverer = Deliverer(
            self.bank,
            transport=config.webhook_transport,
            timeout_seconds=config.webhook_timeout_seconds,
        )
        self.api_keys: set[str] = set(config.api_keys)
        self.oauth = OAuthServer(config, self.clock)
        self._tick_lock: asyncio.Lock | None = None

    def advance_clock(self, seconds: float) -> None:
        """Move the clock forward and remember it in the state file."""
        self.clock.advance(seconds)
        offset = self.store.one("SELECT value FROM meta WHERE key = 'clock_offset'")
        total = (float(offset["value"]) if offset is not None else 0.0) + seconds
        self.store.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('clock_offset', ?)", (repr(total),)
        )

    async def tick(self) -> dict[str, Any]:
        """Apply due payout transitions, then attempt due webhook deliveries."""
        if self._tick_lock is None:
            self._tick_lock = asyncio.Lock()
        async with self._tick_lock:
            transitions = self.bank.apply_due()
            attempts = await self.deliverer.deliver_due()
        return {"transitions": transitions, "deliveries": attempts, "now": self.clock.now()}

    async def run_ticker(self) -> None:
        """Tick forever at the configured interval (serve mode and ``async with Sandbox``)."""
        while True:
            try:
                await self.tick()
            except Exception:  # a failing tick must not stop the next one
                log.exception("sandbox tick failed")
            await asyncio.sleep(self.config.tick_interval_seconds)

    async def aclose(self) -> None:
        """Close the webhook client (the store is closed by ``close``)."""
        await self.deliverer.aclose()

    def close(self) -> None:
        """Close the store."""
        self.store.close()

"""Fault injection: whole-server rates (seeded), per-route plans, and per-request headers.

Kinds: ``500``, ``502``, ``503``, ``504`` and ``429`` answer at once and change
nothing; ``latency=<ms>`` delays the answer; ``lost_response`` runs the request
(the payout is committed), then drops the connection before the body;
``timeout`` runs the request, then answers only after ``timeout_seconds``.
Precedence for one request: the ``X-Sandbox-Fault`` header, else the next planned
outcome for its route, else a roll of the seeded dice against the rates.
"""

from __future__ import annotations

import random
import re
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .config import FaultSettings

STATUS_FAULTS = ("500", "502", "503", "504", "429")
KINDS = (*STATUS_FAULTS, "lost_response", "timeout")
_LATENCY = re.compile(r"^latency=(\d{1,6})$")


@dataclass(frozen=True, slots=True)
class Fault:
    """The fault chosen for one request (kind ``none`` means answer normally)."""

    kind: str
    latency_ms: int = 0

    @property
    def status(self) -> int | None:
        """The HTTP status of an immediate fault answer, if this is one."""
        return int(self.kind) if self.kind in STATUS_FAULTS else None


NO_FAULT = Fault("none")


def parse_fault(text: str | None) -> Fault | None:
    """Parse one fault spelling (``503``, ``lost_response``, ``latency=250``); None = no fault."""
    if text is None or text in ("", "none"):
        return None
    text = text.strip()
    if text in KINDS:
        return Fault(text)
    match = _LATENCY.match(text)
    if match:
        return Fault("latency", int(match.group(1)))
    raise ValueError(
        f"unknown fault {text!r}; use one of {', '.join(KINDS)} or latency=<milliseconds>"
    )


class Faults:
    """The fault switchboard of one sandbox (thread-safe: tests may drive it from outside)."""

    def __init__(self, settings: FaultSettings | None = None) -> None:
        self._lock = threading.Lock()
        self._settings = settings or FaultSettings()
        self._settings.validate()
        self._rng = random.Random(self._settings.seed)
        self._plans: dict[str, deque[Fault | None]] = {}

    @property
    def settings(self) -> FaultSettings:
        """The whole-server settings in force."""
        return self._settings

    def set(
        self,
        *,
        rate_5xx: float | None = None,
        rate_429: float | None = None,
        rate_lost: float | None = None,
        rate_timeout: float | None = None,
        latency_ms: int | None = None,
        timeout_seconds: float | None = None,
        retry_after_seconds: int | None = None,
        seed: int | None = None,
    ) -> FaultSettings:
        """Change whole-server settings; arguments left as None keep their value."""
        changes: dict[str, Any] = {
            k: v
            for k, v in {
                "rate_5xx": rate_5xx,
                "rate_429": rate_429,
                "rate_lost": rate_lost,
                "rate_timeout": rate_timeout,
                "latency_ms": latency_ms,
                "timeout_seconds": timeout_seconds,
                "retry_after_seconds": retry_after_seconds,
                "seed": seed,
            }.items()
            if v is not None
        }
        with self._lock:
            candidate = FaultSettings(**{**asdict(self._settings), **changes})
            candidate.validate()
            self._settings = candidate
            if seed is not None:
                self._rng = random.Random(seed)
            return candidate

    def plan(self, route: str, outcomes: Sequence[str | None]) -> None:
        """Queue outcomes for the next requests to ``route`` (``"POST /v1/payouts"`` or ``"*"``).

        Each entry is a fault spelling or None (answer normally); they are used in order.
        """
        parsed = [parse_fault(o) for o in outcomes]
        key = _route_key(route)
        with self._lock:
            self._plans.setdefault(key, deque()).extend(parsed)

    def clear(self) -> None:
        """Turn every fault off: rates to zero, latency off, plans emptied."""
        with self._lock:
            seed = self._settings.seed
            self._settings = FaultSettings(
                timeout_seconds=self._settings.timeout_seconds,
                retry_after_seconds=self._settings.retry_after_seconds,
                seed=seed,
            )
            self._plans.clear()

    def pending(self) -> dict[str, list[str | None]]:
        """Planned outcomes not used yet, per route."""
        with self._lock:
            return {
                route: [_spell(f) for f in queue] for route, queue in self._plans.items() if queue
            }

    def snapshot(self) -> dict[str, Any]:
        """Settings and pending plans, as the admin route shows them."""
        return {**asdict(self._settings), "plan": self.pending()}

    def choose(self, route: str, header: str | None) -> Fault:
        """Pick the fault for one request to ``route`` (``"METHOD /template"``)."""
        forced = parse_fault(header) if header is not None else None
        if header is not None:
            return forced or NO_FAULT
        with self._lock:
            for key in (route, "*"):
                queue = self._plans.get(key)
                if queue:
                    return queue.popleft() or NO_FAULT
            s = self._settings
            roll = self._rng.random()
            for rate, kind in (
                (s.rate_5xx, "5xx"),
                (s.rate_429, "429"),
                (s.rate_lost, "lost_response"),
                (s.rate_timeout, "timeout"),
            ):
                if roll < rate:
                    if kind == "5xx":
                        kind = self._rng.choice(("500", "502", "503", "504"))
                    return Fault(kind)
                roll -= rate
            if s.latency_ms:
                return Fault("latency", s.latency_ms)
            return NO_FAULT


def _route_key(route: str) -> str:
    route = " ".join(route.split())
    if route == "*":
        return route
    method, _, path = route.partition(" ")
    if not path.startswith("/"):
        raise ValueError(f"route must look like 'POST /v1/payouts' or '*', not {route!r}")
    return f"{method.upper()} {path}"


def _spell(fault: Fault | None) -> str | None:
    if fault is None:
        return None
    if fault.kind == "latency":
        return f"latency={fault.latency_ms}"
    return fault.kind

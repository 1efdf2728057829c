"""Configuration of the sandbox: one frozen-ish dataclass per concern, all defaults documented."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import httpx

DEFAULT_API_KEY = "ak_test_batchpay_sandbox"
DEFAULT_MERCHANT_ID = "mer_batchpaysandbox"
# The documented test OAuth client. Its secret is public knowledge, like the test key above;
# its DPoP key is the test keypair shipped in batchpay/data (see batchpay/sandbox/oauth.py).
DEFAULT_CLIENT_ID = "ant_oc_test_batchpaysandbox"
DEFAULT_CLIENT_SECRET = "ant_ocs_test_batchpaysandbox_public"
AUTH_MODES = ("keys", "oauth", "both")

# Preloaded balances: a million in the big currencies, the equivalent order of
# magnitude in the zero-decimal ones. Strings, never floats.
DEFAULT_BALANCES: Mapping[str, str] = MappingProxyType(
    {
        "USD": "1000000.00",
        "EUR": "1000000.00",
        "GBP": "1000000.00",
        "CAD": "1000000.00",
        "AUD": "1000000.00",
        "CHF": "1000000.00",
        "SEK": "10000000.00",
        "PLN": "4000000.00",
        "JPY": "150000000",
    }
)

# Webhook redelivery delays after each failed attempt: 30 s, 2 min, 8 min, 32 min,
# so 5 attempts in all, as webhook-events.mdx documents.
DEFAULT_WEBHOOK_RETRY_SCHEDULE: tuple[float, ...] = (30.0, 120.0, 480.0, 1920.0)

RATE_LIMIT_BASE = 1000
RATE_LIMIT_TIERS: tuple[int, ...] = (1, 2, 5, 10, 20)


@dataclass
class FaultSettings:
    """Whole-server fault rates (shares of /v1 requests, 0.0 to 1.0) and fault timings."""

    rate_5xx: float = 0.0
    rate_429: float = 0.0
    rate_lost: float = 0.0
    rate_timeout: float = 0.0
    latency_ms: int = 0
    timeout_seconds: float = 30.0
    retry_after_seconds: int = 1
    seed: int | None = None

    def validate(self) -> None:
        """Raise ValueError when a rate is outside 0..1 or their sum exceeds 1."""
        rates = (self.rate_5xx, self.rate_429, self.rate_lost, self.rate_timeout)
        if any(r < 0 or r > 1 for r in rates):
            raise ValueError("fault rates must be between 0 and 1")
        if sum(rates) > 1:
            raise ValueError("fault rates must add up to at most 1")
        if self.latency_ms < 0 or self.timeout_seconds < 0 or self.retry_after_seconds < 0:
            raise ValueError("latency, timeout and retry-after must not be negative")


@dataclass
class SandboxConfig:
    """Everything a sandbox can be told at start; most of it can be changed while running."""

    state_path: str | None = None
    api_keys: tuple[str, ...] = (DEFAULT_API_KEY,)
    merchant_id: str = DEFAULT_MERCHANT_ID
    rate_limit_per_minute: int | None = RATE_LIMIT_BASE
    rate_limit_multiplier: int = 1
    step_seconds: float = 1.0
    manual_clock: bool = False
    clock_start: datetime | None = None
    balances: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_BALANCES))
    default_source_currency: str = "USD"
    idempotency_ttl_seconds: float = 24 * 3600.0
    webhook_retry_schedule: tuple[float, ...] = DEFAULT_WEBHOOK_RETRY_SCHEDULE
    webhook_timeout_seconds: float = 10.0
    webhook_rotation_grace_seconds: float = 24 * 3600.0
    webhook_allow_insecure_urls: bool = True
    webhook_transport: httpx.AsyncBaseTransport | None = None
    tick_interval_seconds: float = 0.25
    faults: FaultSettings = field(default_factory=FaultSettings)
    auth: str = "both"
    """``keys`` (ak_test_ API keys only), ``oauth`` (OAuth + DPoP only) or ``both``."""
    oauth_clients: tuple[tuple[str, str], ...] = ((DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),)
    """(client id, client secret) pairs that may mint tokens."""
    dpop_jwk: Mapping[str, Any] | None = None
    """The public JWK registered for those clients; None: the shipped test key's."""
    token_ttl_seconds: float = 8 * 3600.0
    dpop_iat_leeway_seconds: float = 60.0
    dpop_jti_window_seconds: float = 300.0
    dpop_nonce: bool = False
    """Challenge /v1 proofs without the server's current nonce (RFC 9449 §9)."""
    batch_confirm_ttl_seconds: float = 3600.0
    """How long a validated batch may be confirmed (its ``expires_at``), sandbox seconds."""
    batch_rows_per_step: int = 500
    """Rows a confirmed batch turns into payouts per ``step_seconds`` of processing."""

    def validate(self) -> None:
        """Raise ValueError when the configuration cannot work."""
        if not self.api_keys:
            raise ValueError("at least one API key is needed")
        for key in self.api_keys:
            if not key.startswith("ak_test_"):
                raise ValueError(f"sandbox API keys must start with ak_test_: {key!r}")
        if self.rate_limit_per_minute is not None and self.rate_limit_per_minute < 1:
            raise ValueError("rate_limit_per_minute must be positive or None (off)")
        if self.rate_limit_multiplier not in RATE_LIMIT_TIERS:
            raise ValueError(f"rate_limit_multiplier must be one of {RATE_LIMIT_TIERS}")
        if self.step_seconds <= 0:
            raise ValueError("step_seconds must be positive")
        if self.auth not in AUTH_MODES:
            raise ValueError(f"auth must be one of {', '.join(AUTH_MODES)}, not {self.auth!r}")
        for client_id, secret in self.oauth_clients:
            if not client_id.startswith("ant_oc_test_") or not secret.startswith("ant_ocs_test_"):
                raise ValueError(
                    "sandbox OAuth clients are ant_oc_test_… ids with ant_ocs_test_… secrets"
                )
        if self.auth == "oauth" and not self.oauth_clients:
            raise ValueError("auth 'oauth' needs at least one OAuth client")
        if self.token_ttl_seconds <= 0:
            raise ValueError("token_ttl_seconds must be positive")
        self.faults.validate()

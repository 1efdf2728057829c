"""batchpay.sandbox: a local, stateful simulator of the Anton Payments API.

>>> from batchpay.sandbox import Sandbox, SandboxConfig
>>> sb = Sandbox(SandboxConfig(manual_clock=True))

See docs/sandbox.md for the endpoints, triggers, fees, faults and admin routes.
"""

from __future__ import annotations

from .clock import SandboxClock
from .config import (
    DEFAULT_API_KEY,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    FaultSettings,
    SandboxConfig,
)
from .faults import Faults
from .oauth import dpop_key_path
from .sandbox import Sandbox, SandboxTransport
from .webhooks import sign as sign_webhook
from .webhooks import verify as verify_webhook

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "FaultSettings",
    "Faults",
    "Sandbox",
    "SandboxClock",
    "SandboxConfig",
    "SandboxTransport",
    "dpop_key_path",
    "sign_webhook",
    "verify_webhook",
]

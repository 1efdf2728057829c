"""batchpay.sandbox: a local, stateful simulator of the Anton Payments API.

>>> from batchpay.sandbox import Sandbox, SandboxConfig
>>> sb = Sandbox(SandboxConfig(manual_clock=True))

See docs/sandbox.md for the endpoints, triggers, fees, faults and admin routes.
"""

from __future__ import annotations

from .clock import SandboxClock
from .config import DEFAULT_API_KEY, FaultSettings, SandboxConfig
from .faults import Faults
from .sandbox import Sandbox, SandboxTransport
from .webhooks import sign as sign_webhook
from .webhooks import verify as verify_webhook

__all__ = [
    "DEFAULT_API_KEY",
    "FaultSettings",
    "Faults",
    "Sandbox",
    "SandboxClock",
    "SandboxConfig",
    "SandboxTransport",
    "sign_webhook",
    "verify_webhook",
]

"""batchpay: pay many people from a spreadsheet, exactly once, through the Anton Payments API.

The library verbs are the CLI verbs::

    import batchpay

    plan = batchpay.plan("payouts.csv")              # batchpay validate payouts.csv
    result = batchpay.run("payouts.csv")             # batchpay run payouts.csv
    batchpay.follow(result.run_id)                   # batchpay track RUN
    batchpay.show(result.run_id)                     # batchpay show RUN

The library never prints and never exits; errors are :class:`BatchpayError` subclasses that
carry a message, a hint and the CLI's exit code. (``batchpay.validate`` and ``batchpay.track``
are stage modules, so the verbs behind ``batchpay validate`` and ``batchpay track`` are
``batchpay.plan`` and ``batchpay.follow``.) Heavy modules (polars, pandera) load on first
use, so ``import batchpay`` — and the sandbox — start fast.
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import Any

from batchpay.errors import (
    ApiError,
    BatchpayError,
    ConfigError,
    ControlTotalsMismatch,
    DuplicateFileError,
    ExitCode,
    InputError,
    PreflightError,
    RowIssue,
    RunLockedError,
    TransportError,
    ValidationFailed,
)

__version__ = "0.1.0"

# The library logs but never configures logging: without a handler of the application's,
# nothing is printed.
logging.getLogger(__name__).addHandler(logging.NullHandler())

# name -> (module, attribute), imported on first use.
_LAZY: dict[str, tuple[str, str]] = {
    "run": ("batchpay.pipeline", "run"),
    "run_async": ("batchpay.pipeline", "run_async"),
    "plan": ("batchpay.planning", "plan"),
    "regenerate_report": ("batchpay.pipeline", "report_for"),
    "runs": ("batchpay.pipeline", "runs"),
    "RunOptions": ("batchpay.pipeline", "RunOptions"),
    "RunResult": ("batchpay.pipeline", "RunResult"),
    "Plan": ("batchpay.planning", "Plan"),
    "show": ("batchpay.manage", "show"),
    "follow": ("batchpay.manage", "track"),
    "cancel": ("batchpay.manage", "cancel"),
    "retry_failed": ("batchpay.manage", "retry_failed"),
    "PayoutFile": ("batchpay.source", "PayoutFile"),
    "Settings": ("batchpay.config", "Settings"),
    "resolve_settings": ("batchpay.config", "resolve_settings"),
}

__all__ = [
    "ApiError",
    "BatchpayError",
    "ConfigError",
    "ControlTotalsMismatch",
    "DuplicateFileError",
    "ExitCode",
    "InputError",
    "PayoutFile",
    "Plan",
    "PreflightError",
    "RowIssue",
    "RunLockedError",
    "RunOptions",
    "RunResult",
    "Settings",
    "TransportError",
    "ValidationFailed",
    "__version__",
    "cancel",
    "follow",
    "plan",
    "regenerate_report",
    "resolve_settings",
    "retry_failed",
    "run",
    "run_async",
    "runs",
    "show",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'batchpay' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

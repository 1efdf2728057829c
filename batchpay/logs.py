"""Logging for operators: what the library logs, and the CLI's way of showing it.

Every stage logs through ``logging.getLogger(__name__)`` (file taken, validated, run
created, each API call with method, path, status, latency and ``X-Request-ID``, each row's
outcome, report written). The library never configures logging: only the CLI calls
:func:`configure` (``--log-format``, ``--log-level``), and Airflow shows the events in its
task log through its own handlers. No secret and no full account number is ever logged:
fields are ids, counts, statuses and masked accounts only.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


class _StandardError(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when the event is logged (it may be replaced)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure(level: str = "warning", fmt: str = "text") -> None:
    """Send batchpay's log events to standard error (the CLI's choice, never the library's)."""
    handler = _StandardError(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("batchpay")
    for old in list(logger.handlers):
        if getattr(old, "_batchpay_cli", False):
            logger.removeHandler(old)
    handler._batchpay_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level.upper())

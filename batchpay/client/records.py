"""What the client hands back: :class:`ApiResult` for an answer, :class:`CallRecord` per attempt."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["ApiResult", "CallRecord", "OnCall"]


@dataclass(frozen=True, slots=True)
class ApiResult:
    """A successful answer: the unwrapped data plus what the pipeline records about it."""

    data: Any
    """The resource (dict), the page's items (list), or None for an empty body."""
    status: int
    request_id: str | None
    """The answer's ``X-Request-ID`` (the one we sent when the server sent none)."""
    replayed: bool = False
    """True when the server answered ``X-Idempotent-Replayed: true``."""
    idempotency_key: str | None = None
    attempts: int = 1
    """HTTP attempts it took, the first try included."""
    has_more: bool = False
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One HTTP attempt, successful or not, for the journal. No secrets, no bodies."""

    method: str
    path: str
    """The URL path without the query string."""
    status: int | None
    """HTTP status, or None when no answer arrived."""
    error_code: str | None
    """The API's error code, ``timeout``/``transport_error``/``invalid_response``, or None."""
    request_id: str | None
    """The answer's ``X-Request-ID``, else the one we sent with the attempt."""
    idempotency_key: str | None
    attempt: int
    duration_ms: float
    started_at: datetime
    replayed: bool = False
    will_retry: bool = False
    """Whether the client is going to try this request again."""
    server_date: datetime | None = None
    """The answer's ``Date`` header: the provider's clock when it answered."""

    def as_dict(self) -> dict[str, Any]:
        """The record as plain values (``started_at`` as an ISO 8601 string) for storage."""
        return {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "error_code": self.error_code,
            "request_id": self.request_id,
            "idempotency_key": self.idempotency_key,
            "attempt": self.attempt,
            "duration_ms": self.duration_ms,
            "started_at": self.started_at.isoformat(),
            "replayed": self.replayed,
            "will_retry": self.will_retry,
            "server_date": self.server_date.isoformat() if self.server_date else None,
        }


OnCall = Callable[[CallRecord], None]

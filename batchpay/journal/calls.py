"""The HTTP exchanges a run made (no bodies, no secrets)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from batchpay.journal.base import JournalBase
from batchpay.journal.records import ApiCall


class CallVerbs(JournalBase):
    """The journal verbs for recorded API calls."""

    def record_call(self, run_id: str | None, call: Mapping[str, Any]) -> None:
        """Store one HTTP exchange (no bodies, no secrets)."""
        with self.transaction(single=True) as db:
            db.execute(_INSERT_CALL, _call_values(run_id, call))

    def record_calls(self, run_id: str | None, calls: Sequence[Mapping[str, Any]]) -> None:
        """Store many HTTP exchanges at once, in their order (as :meth:`record_call` each)."""
        if not calls:
            return
        with self.transaction(single=True) as db:
            db.executemany(_INSERT_CALL, [_call_values(run_id, call) for call in calls])

    def calls(self, run_id: str) -> list[ApiCall]:
        """API calls made by a run, in order."""
        found = self.db.execute("SELECT * FROM api_calls WHERE run_id=? ORDER BY id", (run_id,))
        return ApiCall.from_rows(found)


_INSERT_CALL = """INSERT INTO api_calls (run_id, started_at, method, path, status, error_code,
                  request_id, idempotency_key, attempt, duration_ms)
                  VALUES (?,?,?,?,?,?,?,?,?,?)"""


def _call_values(run_id: str | None, call: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        run_id,
        call["started_at"],
        call["method"],
        call["path"],
        call.get("status"),
        call.get("error_code"),
        call.get("request_id"),
        call.get("idempotency_key"),
        call.get("attempt", 1),
        call.get("duration_ms", 0.0),
    )

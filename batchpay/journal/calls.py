"""The HTTP exchanges a run made (no bodies, no secrets)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from batchpay.journal.base import JournalBase
from batchpay.journal.records import ApiCall


class CallVerbs(JournalBase):
    """The journal verbs for recorded API calls."""

    def record_call(
        self, run_id: str | None, call: Mapping[str, Any], *, returning: bool = False
    ) -> int | None:
        """Store one HTTP exchange (no bodies, no secrets); its id with ``returning``."""
        with self.transaction(single=True) as db:
            found = db.execute(
                """INSERT INTO api_calls (run_id, started_at, method, path, status, error_code,
                   request_id, idempotency_key, attempt, duration_ms)
                   VALUES (?,?,?,?,?,?,?,?,?,?)"""
                + (" RETURNING id" if returning else ""),
                (
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
                ),
            )
            row = found.fetchone() if returning else None
        return int(row[0]) if row is not None else None

    def adopt_calls(self, run_id: str, ids: list[int]) -> None:
        """Give calls recorded before their run existed (its ledger look) the run's id."""
        if not ids:
            return
        with self.transaction(single=True) as db:
            db.execute(
                f"UPDATE api_calls SET run_id=? WHERE run_id IS NULL AND id IN "
                f"({','.join('?' * len(ids))})",
                (run_id, *ids),
            )

    def calls(self, run_id: str) -> list[ApiCall]:
        """API calls made by a run, in order."""
        found = self.db.execute("SELECT * FROM api_calls WHERE run_id=? ORDER BY id", (run_id,))
        return ApiCall.from_rows(found)

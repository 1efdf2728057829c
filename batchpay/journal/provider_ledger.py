"""The provider's ledger as swept: payouts it holds, whichever journal made them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from batchpay.journal.base import JournalBase
from batchpay.journal.records import ProviderPayout
from batchpay.journal.states import (
    CREATED,
)


class LedgerVerbs(JournalBase):
    """The journal verbs for the swept provider ledger."""

    def ledger_high_water(self, environment: str) -> str | None:
        """The newest ``created_at`` (provider time) a completed sweep of this world saw."""
        row = self.db.execute(
            "SELECT high_water FROM ledger_sweeps WHERE environment=?", (environment,)
        ).fetchone()
        return str(row[0]) if row else None

    def sent_per_second(self, environment: str, since: str) -> dict[str, int]:
        """Payouts this journal sent since ``since`` (its own clock), counted per second of
        their first send (``YYYY-MM-DDTHH:MM:SS``): where a sweep will find them dense.

        Only runs touched since then are looked at, so the cost follows the recent runs,
        not the journal's history."""
        rows = self.db.execute(
            """SELECT substr(p.first_sent_at, 1, 19) AS second, COUNT(*) FROM payouts p
               WHERE p.run_id IN (SELECT id FROM runs WHERE environment=? AND updated_at>=?)
               AND p.first_sent_at >= ? GROUP BY second""",
            (environment, since, since),
        ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def record_ledger_sweep(
        self, environment: str, payouts: Sequence[Mapping[str, Any]], high_water: str | None
    ) -> None:
        """Store what a completed sweep found and move the world's high-water mark."""
        now = self.now()
        with self.transaction() as db:
            db.executemany(
                """INSERT INTO provider_payouts (environment, payout_id, idempotency_key,
                   row_key, attempt, reference, status, created_at, seen_at, doc)
                   VALUES (:environment, :payout_id, :idempotency_key, :row_key, :attempt,
                   :reference, :status, :created_at, :seen_at, :doc)
                   ON CONFLICT (environment, payout_id) DO UPDATE SET status=excluded.status,
                   seen_at=excluded.seen_at, doc=excluded.doc""",
                [{**p, "environment": environment, "seen_at": now} for p in payouts],
            )
            if high_water is not None:
                db.execute(
                    """INSERT INTO ledger_sweeps (environment, high_water, swept_at, payouts_seen)
                       VALUES (?,?,?,?) ON CONFLICT (environment) DO UPDATE SET
                       high_water=CASE WHEN excluded.high_water > ledger_sweeps.high_water
                       THEN excluded.high_water ELSE ledger_sweeps.high_water END,
                       swept_at=excluded.swept_at,
                       payouts_seen=ledger_sweeps.payouts_seen + excluded.payouts_seen""",
                    (environment, high_water, now, len(payouts)),
                )

    def provider_payouts_for(self, environment: str, row_key: str) -> list[ProviderPayout]:
        """Payouts the provider holds for this row key (any journal's), oldest attempt first."""
        return ProviderPayout.from_rows(
            self.db.execute(
                """SELECT * FROM provider_payouts WHERE environment=? AND row_key=?
                   ORDER BY attempt, created_at""",
                (environment, row_key),
            )
        )

    def provider_payout_for_key(self, idempotency_key: str) -> ProviderPayout | None:
        """The provider's payout made with this idempotency key, if a sweep saw one."""
        row = self.db.execute(
            "SELECT * FROM provider_payouts WHERE idempotency_key=? ORDER BY created_at LIMIT 1",
            (idempotency_key,),
        ).fetchone()
        return ProviderPayout.maybe(row)

    def adopt_provider_payout(
        self,
        *,
        environment: str,
        run_id: str,
        row_number: int,
        found: Mapping[str, Any],
        body: str,
        note: str,
        hold: tuple[str, str] | None = None,
    ) -> bool:
        """Record a payout the provider already holds for a row (made from another journal).

        The row becomes ``already_paid`` with the provider's payout id; the payout is
        journalled as this row's live intent, so nothing in this journal sends it again.
        Returns False when this journal already holds a live intent for the row key.
        """
        now = self.now()
        found = dict(found)
        doc = json.loads(str(found["doc"])) if found.get("doc") else {}
        with self.transaction() as db:
            try:
                db.execute(
                    """INSERT INTO payouts (idempotency_key, environment, row_key, attempt,
                       run_id, row_number, reference, body, state, payout_id, status,
                       settled_by, live_key, created_at, updated_at)
                       VALUES (?,?,?,?,?,?,?,?,?,?,?,'ledger',?,?,?)""",
                    (
                        found["idempotency_key"],
                        environment,
                        found["row_key"],
                        found["attempt"],
                        run_id,
                        row_number,
                        found["reference"],
                        body,
                        CREATED,
                        found["payout_id"],
                        found["status"],
                        found["row_key"],
                        now,
                        now,
                    ),
                )
            except sqlite3.IntegrityError:
                return False
            # ``hold`` (error code, message): the row is held instead, in the same write
            # (a row paid another amount than it asks is never left marked paid).
            db.execute(
                """UPDATE rows SET state=?, error_code=?, idempotency_key=?, error_message=?,
                   beneficiary_id=COALESCE(?, beneficiary_id),
                   instrument_id=COALESCE(?, instrument_id), updated_at=?
                   WHERE run_id=? AND row_number=?""",
                (
                    "held" if hold else "already_paid",
                    hold[0] if hold else None,
                    found["idempotency_key"],
                    hold[1] if hold else note,
                    doc.get("beneficiary_id"),
                    doc.get("instrument_id"),
                    now,
                    run_id,
                    row_number,
                ),
            )
        return True

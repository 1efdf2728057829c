"""Payout intents: committed before the request leaves, then settled by the provider.

An intent's idempotency key and body never change once committed, and one row identity
has at most one live intent per environment (see :meth:`PayoutVerbs.begin_payout`).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from batchpay.errors import MAX_MESSAGE_CHARS, JournalError, server_text
from batchpay.journal.base import JournalBase, format_ts
from batchpay.journal.records import PayoutIntent
from batchpay.journal.states import (
    CREATED,
    REJECTED,
    SENDING,
    SETTLED_FAILURES,
    STATUS_RANK,
    TERMINAL_STATUSES,
    UNKNOWN,
)


class LivePayoutExists(JournalError):
    """Another run already holds a live payout intent for this row identity."""

    def __init__(self, run_id: str, row_number: int) -> None:
        super().__init__(f"row already has a live payout in run {run_id} (row {row_number})")
        self.run_id = run_id
        self.row_number = row_number


_INTENT_FIELDS = tuple(f.name for f in fields(PayoutIntent))


class PayoutVerbs(JournalBase):
    """The journal verbs for payout intents and their statuses."""

    def begin_payout(
        self,
        *,
        environment: str,
        run_id: str,
        row_number: int,
        row_key: str,
        reference: str,
        attempt: int,
        idempotency_key: str,
        body: str,
        after_failure: bool = False,
        revive: bool = False,
        sending: bool = False,
        provider_at: datetime | None = None,
        destination: tuple[str, str, str | None] | None = None,
    ) -> PayoutIntent:
        """Commit the intent to send (state ``sending``) before any request leaves.

        ``destination`` (beneficiary id, instrument id, beneficiary name) is written on the
        row by the same statement that marks it ``payout`` (what ``update_row`` would write).

        With ``sending``, the first send is recorded with it (what :meth:`mark_sent_attempt`
        records, ``provider_at`` the provider's clock): the caller sends it next.

        With ``revive``, an intent with this key that the provider definitively refused (and
        has since forgotten) is made live again with ``body``: the same key for the same
        row, so two journals that disagree on how often a row was refused still send the
        same key (the provider answers the second with the first's payout).

        Returns the stored intent. If an intent with this key already exists, it is
        returned unchanged: its body, not the new one, is what will be sent.
        Raises LivePayoutExists if another *live* intent exists for the same row_key
        (the caller checked, but another process may have raced us). With
        ``after_failure`` (``retry-failed``), a payout that ended ``failed`` or
        ``returned`` does not count as live; a completed or pending one always does.
        """
        now = self.now()
        provider = format_ts(provider_at) if sending and provider_at is not None else None
        inserted: PayoutIntent | None = None
        with self.transaction() as db:
            # The intent with this key, and the row key's other intents that are not
            # refusals (the live check below): one read.
            existing, others = None, []
            for found in db.execute(
                """SELECT * FROM payouts WHERE idempotency_key=?
                   OR (environment=? AND row_key=? AND state != ?) ORDER BY attempt""",
                (idempotency_key, environment, row_key, REJECTED),
            ).fetchall():
                if found["idempotency_key"] == idempotency_key:
                    existing = found
                else:
                    others.append(found)
            if existing is not None and revive and existing["state"] == REJECTED:
                # The refusal stays on record (and in its run's report) under an archived
                # key; the key itself becomes this new intent's. The provider's memory of
                # the key may still date from the refused request (a key revived before it
                # is surely forgotten): the new intent keeps that time, so its resend is
                # looked up first rather than trusted to the key, and a later refusal of it
                # is judged forgotten from when the provider first saw the key.
                if existing["first_sent_provider_at"] is not None:
                    provider = str(existing["first_sent_provider_at"])
                # (Each archive its own row key: a key revived, refused again and revived
                # again archives a second refusal of the same attempt.)
                tag = f"#refused-{uuid.uuid4().hex[:8]}"
                archived = f"{idempotency_key}{tag}"
                db.execute(
                    "UPDATE payouts SET idempotency_key=?, row_key=row_key || ? "
                    "WHERE idempotency_key=?",
                    (archived, tag, idempotency_key),
                )
                db.execute(
                    "UPDATE rows SET idempotency_key=? WHERE idempotency_key=?",
                    (archived, idempotency_key),
                )
                existing = None
            if existing is None:
                may_follow = {"failed", "returned"} if after_failure else set()
                for other in others:
                    if not (other["state"] == CREATED and other["status"] in may_follow):
                        raise LivePayoutExists(str(other["run_id"]), int(other["row_number"]))
                sent_at = now if sending else None
                try:
                    db.execute(
                        """INSERT INTO payouts (idempotency_key, environment, row_key, attempt,
                           run_id, row_number, reference, body, state, live_key, created_at,
                           updated_at, first_sent_at, last_sent_at, first_sent_provider_at,
                           send_count) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                        (
                            idempotency_key,
                            environment,
                            row_key,
                            attempt,
                            run_id,
                            row_number,
                            reference,
                            body,
                            SENDING,
                            row_key,
                            now,
                            now,
                            sent_at,
                            sent_at,
                            provider,
                            1 if sending else 0,
                        ),
                    )
                    # What the row now holds, without reading it back.
                    stored: dict[str, Any] = dict.fromkeys(_INTENT_FIELDS)
                    inserted = PayoutIntent(**{
                        **stored,
                        "idempotency_key": idempotency_key, "environment": environment,
                        "row_key": row_key, "attempt": attempt, "run_id": run_id,
                        "row_number": row_number, "reference": reference, "body": body,
                        "state": SENDING, "first_sent_at": sent_at, "last_sent_at": sent_at,
                        "send_count": 1 if sending else 0, "created_at": now,
                        "updated_at": now, "live_key": row_key,
                        "first_sent_provider_at": provider,
                    })  # fmt: skip
                except sqlite3.IntegrityError:
                    # The database's own guard (one live intent per row key) fired: some
                    # path got past the check above. Never a second live intent.
                    live = db.execute(
                        "SELECT run_id, row_number FROM payouts WHERE environment=? AND live_key=?",
                        (environment, row_key),
                    ).fetchone()
                    if live is None:
                        raise
                    raise LivePayoutExists(str(live["run_id"]), int(live["row_number"])) from None
            elif sending:  # an intent stored before: this is one more send of it
                self._mark_sent(db, idempotency_key, now, provider)
            if destination is None:
                db.execute(
                    """UPDATE rows SET state='payout', idempotency_key=?, updated_at=?
                       WHERE run_id=? AND row_number=?""",
                    (idempotency_key, now, run_id, row_number),
                )
            else:
                db.execute(
                    """UPDATE rows SET state='payout', idempotency_key=?, updated_at=?,
                       beneficiary_id=?, instrument_id=?, beneficiary_name=?
                       WHERE run_id=? AND row_number=?""",
                    (idempotency_key, now, *destination, run_id, row_number),
                )
            if inserted is not None:
                return inserted
            row = db.execute(
                "SELECT * FROM payouts WHERE idempotency_key=?", (idempotency_key,)
            ).fetchone()
        return PayoutIntent.from_row(row)

    def mark_sent_attempt(self, idempotency_key: str, *, provider_at: datetime | None) -> None:
        """Record that a request with this key is about to leave (first and every resend).

        ``provider_at`` is the provider's clock at the first send, which alone decides how
        long the provider still remembers the key.
        """
        now = self.now()
        provider = format_ts(provider_at) if provider_at is not None else None
        with self.transaction(single=True) as db:
            self._mark_sent(db, idempotency_key, now, provider)

    @staticmethod
    def _mark_sent(db: Any, idempotency_key: str, now: str, provider: str | None) -> None:
        db.execute(
            """UPDATE payouts SET first_sent_at=COALESCE(first_sent_at, ?), last_sent_at=?,
               first_sent_provider_at=COALESCE(first_sent_provider_at, ?),
               send_count=send_count+1, updated_at=? WHERE idempotency_key=?""",
            (now, now, provider, now, idempotency_key),
        )

    def record_payout_created(
        self,
        idempotency_key: str,
        payout: Mapping[str, Any],
        *,
        request_id: str | None,
        settled_by: str,
        fee_method: tuple[str, str] | None = None,
    ) -> None:
        """The provider holds a payout for this intent: store its id, amounts and status.

        ``fee_method`` is the intent's (environment, payout method) when the caller knows
        them (the fee is remembered per method without reading the stored body back).

        One transaction: the status is recorded as :meth:`record_status` records it, and
        when this intent is the one row holding the payout id, written by the same
        ``UPDATE`` that stores the payout.
        """
        now = self.now()
        pid, status = payout.get("id"), payout.get("status")
        tracked = isinstance(status, str) and bool(pid)
        reason = _reason(payout) if tracked else None
        with self.transaction() as db:
            fold: tuple[str, str | None] | None = None
            if tracked:
                fold = self._status_change(db, str(pid), str(status), settled_by, now, reason,
                                           idempotency_key=idempotency_key)  # fmt: skip
            values = (
                CREATED,
                payout.get("id"),
                payout.get("source_amount"),
                payout.get("source_currency"),
                payout.get("dest_amount"),
                payout.get("dest_currency"),
                payout.get("fee"),
                payout.get("fee_currency"),
                payout.get("exchange_rate"),
                payout.get("total_debited"),
                payout.get("total_debited_currency"),
                request_id,
                settled_by,
                now,
            )
            sql = """UPDATE payouts SET state=?, payout_id=?, source_amount=?, source_currency=?,
                   dest_amount=?, dest_currency=?, fee=?, fee_currency=?, exchange_rate=?,
                   total_debited=?, total_debited_currency=?, request_id=COALESCE(?, request_id),
                   settled_by=?, error_code=NULL, error_message=NULL, updated_at=?"""
            if fold is not None and fold[0]:
                new_status, why = fold
                db.execute(
                    sql + """, status=?, status_at=?, failure_reason=COALESCE(?, failure_reason),
                       live_key=CASE WHEN ? THEN NULL ELSE live_key END
                       WHERE idempotency_key=?""",
                    (*values, new_status, now, why, new_status in SETTLED_FAILURES,
                     idempotency_key),
                )  # fmt: skip
            else:
                db.execute(sql + " WHERE idempotency_key=?", (*values, idempotency_key))
            self._remember_fee_once(db, idempotency_key, payout, fee_method)
        if tracked and fold is None:  # another row holds this payout id too
            self.record_status(str(pid), str(status), source=settled_by, reason=reason)

    def _remember_fee_once(
        self,
        db: Any,
        idempotency_key: str,
        payout: Mapping[str, Any],
        fee_method: tuple[str, str] | None,
    ) -> None:
        """:func:`_remember_fee`, not asked again for a fee no higher than one this journal
        already stored for the method: ``payout_fees`` only ever rises, so nothing would
        change (a run's payouts mostly share a fee)."""
        fee, currency = _decimal(payout.get("fee")), payout.get("fee_currency")
        if fee_method is None or fee is None or currency is None:
            _remember_fee(db, idempotency_key, payout, fee_method)
            return
        floors: dict[tuple[str, ...], Decimal] = self.__dict__.setdefault("_fee_floors", {})
        key = (*fee_method, str(currency))
        known = floors.get(key)
        if known is not None and fee <= known:
            return
        highest = _remember_fee(db, idempotency_key, payout, fee_method)
        if highest is not None:
            floors[key] = highest

    @staticmethod
    def _status_change(
        db: Any,
        payout_id: str,
        status: str,
        source: str,
        now: str,
        reason: str | None,
        *,
        idempotency_key: str,
    ) -> tuple[str, str | None] | None:
        """Record the status event; the status this intent's row moves to ('' for none).

        The same decision as :meth:`record_status` (the furthest status any event of the
        payout has shown, only ever forward), for the one row about to hold the id. None,
        with nothing written, when another row holds the payout id already: the caller
        records the status for every row that holds it (:meth:`record_status`).
        """
        # Whether another row holds the id, the intent's stored status and every earlier
        # event's status of the payout: one read.
        found = db.execute(
            """SELECT 'event', status FROM payout_events WHERE payout_id=?
               UNION ALL SELECT 'current', status FROM payouts WHERE idempotency_key=?
               UNION ALL SELECT 'other', NULL WHERE EXISTS (SELECT 1 FROM payouts
                   WHERE payout_id=? AND idempotency_key != ?)""",
            (payout_id, idempotency_key, payout_id, idempotency_key),
        ).fetchall()
        statuses, current = [status], None
        for kind, value in found:
            if kind == "other":
                return None
            if kind == "current":
                current = value
            else:
                statuses.append(str(value))
        reason = server_text(reason, MAX_MESSAGE_CHARS) or None if reason else None
        try:
            db.execute(
                """INSERT INTO payout_events (payout_id, event_id, status, source,
                   occurred_at, received_at) VALUES (?,?,?,?,?,?)""",
                (payout_id, None, status, source, None, now),
            )
        except sqlite3.IntegrityError:
            return "", None
        best = max(statuses, key=lambda st: STATUS_RANK.get(st, -1))
        if current is None or STATUS_RANK.get(best, -1) > STATUS_RANK.get(current, -1):
            return best, reason
        return "", None

    def record_payout_rejected(
        self,
        idempotency_key: str,
        *,
        code: str,
        message: str,
        request_id: str | None,
        seen_before: datetime | None = None,
    ) -> None:
        """The provider definitively refused the payout; nothing was created.

        ``seen_before``: the provider's time by which it had first seen the key, when the
        refusal was a replay of another journal's (the key's memory began before this
        journal's send): kept as the first send's provider time if it is earlier."""
        sql = """UPDATE payouts SET state=?, error_code=?, error_message=?, request_id=?,
                 live_key=NULL, updated_at=?"""
        args: list[Any] = [REJECTED, code, message, request_id, self.now()]
        if seen_before is not None:
            earlier = format_ts(seen_before)
            sql += """, first_sent_provider_at=CASE WHEN first_sent_provider_at IS NULL
                      OR first_sent_provider_at > ? THEN ? ELSE first_sent_provider_at END"""
            args += [earlier, earlier]
        with self.transaction(single=True) as db:
            db.execute(sql + " WHERE idempotency_key=?", (*args, idempotency_key))

    def record_payout_unknown(
        self, idempotency_key: str, *, code: str, message: str, request_id: str | None
    ) -> None:
        """Retries ran out without an answer: the outcome is unknown until settled."""
        with self.transaction(single=True) as db:
            db.execute(
                """UPDATE payouts SET state=?, error_code=?, error_message=?,
                   request_id=COALESCE(?, request_id), updated_at=?
                   WHERE idempotency_key=? AND state != ?""",
                (UNKNOWN, code, message, request_id, self.now(), idempotency_key, CREATED),
            )

    def note_payout_problem(self, idempotency_key: str, *, code: str, message: str) -> None:
        """Keep a problem a person must see on a created payout (its row needs a person)."""
        with self.transaction(single=True) as db:
            db.execute(
                """UPDATE payouts SET error_code=?, error_message=?, updated_at=?
                   WHERE idempotency_key=?""",
                (code, message, self.now(), idempotency_key),
            )

    def record_status(
        self,
        payout_id: str,
        status: str,
        *,
        source: str,
        event_id: str | None = None,
        occurred_at: str | None = None,
        reason: str | None = None,
    ) -> bool:
        """Record an observed payout status; return False for a duplicate event.

        The stored status only moves forward: a late ``sent`` never overwrites
        ``completed``. ``reason`` is the provider's text: bounded and redacted here.
        """
        reason = server_text(reason, MAX_MESSAGE_CHARS) or None if reason else None
        now = self.now()
        with self.transaction() as db:
            try:
                db.execute(
                    """INSERT INTO payout_events (payout_id, event_id, status, source,
                       occurred_at, received_at) VALUES (?,?,?,?,?,?)""",
                    (payout_id, event_id, status, source, occurred_at, now),
                )
            except sqlite3.IntegrityError:
                return False
            row = db.execute(
                "SELECT status FROM payouts WHERE payout_id=?", (payout_id,)
            ).fetchone()
            if row is not None:
                # Events that arrived before batchpay knew this payout id (a webhook racing
                # a lost response) count too: the furthest status seen wins.
                seen = [
                    str(e["status"])
                    for e in db.execute(
                        "SELECT status FROM payout_events WHERE payout_id=?", (payout_id,)
                    )
                ]
                status = max(seen, key=lambda st: STATUS_RANK.get(st, -1))
                current = row["status"]
                if current is None or STATUS_RANK.get(status, -1) > STATUS_RANK.get(current, -1):
                    db.execute(
                        """UPDATE payouts SET status=?, status_at=?, updated_at=?,
                           failure_reason=COALESCE(?, failure_reason),
                           live_key=CASE WHEN ? THEN NULL ELSE live_key END
                           WHERE payout_id=?""",
                        (
                            status,
                            occurred_at or now,
                            now,
                            reason,
                            status in SETTLED_FAILURES,
                            payout_id,
                        ),
                    )
        return True

    def known_fees(self, environment: str) -> dict[tuple[str, str], Decimal]:
        """The highest fee the provider charged per (payout method, fee currency).

        Read from ``payout_fees``, a few rows per method and currency, not from every payout.
        """
        fees: dict[tuple[str, str], Decimal] = {}
        for r in self.db.execute(
            "SELECT method, fee_currency, fee FROM payout_fees WHERE environment=?",
            (environment,),
        ):
            fee = _decimal(r["fee"])
            if fee is not None:
                key = (str(r["method"]), str(r["fee_currency"]))
                fees[key] = max(fees.get(key, fee), fee)
        return fees

    def open_payouts(self, run_id: str | None = None) -> list[PayoutIntent]:
        """Intents whose outcome is not final: sending, unknown, or created but not terminal."""
        sql = """SELECT * FROM payouts WHERE (state IN (?, ?) OR (state = ? AND
                 (status IS NULL OR status NOT IN ({}))))""".format(
            ",".join("?" * len(TERMINAL_STATUSES))
        )
        args: list[Any] = [SENDING, UNKNOWN, CREATED, *sorted(TERMINAL_STATUSES)]
        if run_id is not None:
            sql += " AND run_id = ?"
            args.append(run_id)
        found = self.db.execute(sql + " ORDER BY run_id, row_number", args)
        return PayoutIntent.from_rows(found)

    def knows_payout(self, payout_id: str) -> bool:
        """Whether an intent in this journal holds the provider's payout ``payout_id``."""
        found = self.db.execute(
            "SELECT 1 FROM payouts WHERE payout_id=? LIMIT 1", (payout_id,)
        ).fetchone()
        return found is not None

    def last_attempt(self, environment: str, row_key: str) -> int:
        """The highest attempt this journal or the provider's ledger knows for a row key."""
        row = self.db.execute(
            """SELECT MAX(a) FROM (
                 SELECT MAX(attempt) AS a FROM payouts WHERE environment=? AND row_key=?
                 UNION ALL
                 SELECT MAX(attempt) AS a FROM provider_payouts
                 WHERE environment=? AND row_key=?) AS attempts""",
            (environment, row_key, environment, row_key),
        ).fetchone()
        return int(row[0] or 0)


def _decimal(value: object) -> Decimal | None:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() else None


def _remember_fee(
    db: sqlite3.Connection,
    idempotency_key: str,
    payout: Mapping[str, Any],
    known: tuple[str, str] | None = None,
) -> Decimal | None:
    """Keep ``payout_fees`` at the highest fee per method and fee currency (in ``db``'s tx);
    ``known``: the intent's (environment, method), else read from its stored body. Returns
    the highest fee now stored (None when there was nothing to keep)."""
    fee, currency = _decimal(payout.get("fee")), payout.get("fee_currency")
    if fee is None or currency is None:
        return None
    if known is None:
        row = db.execute(
            "SELECT environment, body FROM payouts WHERE idempotency_key=?", (idempotency_key,)
        ).fetchone()
        if row is None:
            return None
        try:
            known = (str(row["environment"]), str(json.loads(row["body"])["method"]))
        except (ValueError, KeyError, TypeError):
            return None
    key = (*known, str(currency))
    where = "WHERE environment=? AND method=? AND fee_currency=?"
    seen = [str(r[0]) for r in db.execute(f"SELECT fee FROM payout_fees {where}", key)]
    text, highest = str(payout["fee"]), fee
    for other in seen:
        amount = _decimal(other)
        if amount is not None and amount > highest:
            text, highest = other, amount
    if seen == [text]:
        return highest  # already the one row, at the highest
    db.execute(f"DELETE FROM payout_fees {where}", key)
    db.execute("INSERT INTO payout_fees VALUES (?, ?, ?, ?)", (*key, text))
    return highest


def _reason(payout: Mapping[str, Any]) -> str | None:
    for key in ("cancelled_reason", "reason", "failure_reason"):
        value = payout.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def dumps_body(body: Mapping[str, Any]) -> str:
    """The canonical serialisation of a request body: what is stored is what is sent."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

"""Payouts: creation (check, price, debit), the lifecycle walked lazily, cancel, events, lists.

A payout's plan (its outcome's path, the index reached, the step and the creation
time) is stored with it; :meth:`Payouts.apply_due` walks every plan up to the
sandbox clock, so state is a pure function of time. The paths and triggers
themselves live in :mod:`..lifecycle`.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from batchpay.money import fits_scale, format_amount

from .._util import iso, new_id
from ..clock import SandboxClock
from ..config import SandboxConfig
from ..lifecycle import (
    ACTOR_FOR_STATUS,
    CANCELLABLE,
    EVENT_FOR_STATUS,
    OUTCOMES,
    TERMINAL,
    TIMESTAMP_FOR_STATUS,
)
from ..pricing import PricingError, price
from ..problems import ApiProblem, FieldError, not_found, validation_failed
from ..store import Store, load, store_doc
from ..validation import RAIL_CURRENCY, RAIL_NETWORK, RAILS_FOR_INSTRUMENT, PayoutInput
from .balances import Balances
from .events import Events
from .paging import Listing, Page, page_of

# Their webhook event carries the id, status and reason, not the whole payout.
_COMPACT_EVENTS = frozenset({"screening_failed", "velocity_blocked"})


class Payouts:
    """Payouts and their recorded transitions; funds move on the balances, events go out."""

    def __init__(
        self,
        store: Store,
        clock: SandboxClock,
        config: SandboxConfig,
        balances: Balances,
        events: Events,
        outcome_for: Callable[[Decimal, str], str],
    ) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.merchant_id = config.merchant_id
        self.balances = balances
        self.events = events
        self.outcome_for = outcome_for

    def _resolve_source_currency(self, inp: PayoutInput) -> str:
        if inp.source_currency:
            return inp.source_currency
        held = self.store.one("SELECT 1 FROM balances WHERE currency = ?", (inp.dest_currency,))
        return inp.dest_currency if held else self.config.default_source_currency

    def create_payout(
        self, inp: PayoutInput, idempotency_key: str | None, *, batch_id: str | None = None
    ) -> dict[str, Any]:
        """Create a payout: check, price, debit the balance and start its lifecycle.

        ``batch_id`` marks a payout a confirmed batch creates (the same checks and path).
        """
        self.apply_due()
        with self.store.tx():
            ben_row = self.store.one(
                "SELECT status FROM beneficiaries WHERE id = ?", (inp.beneficiary_id,)
            )
            if ben_row is None:
                raise not_found("beneficiary")
            ins_row = self.store.one(
                "SELECT beneficiary_id, method, status FROM instruments WHERE id = ?",
                (inp.instrument_id,),
            )
            if ins_row is None:
                raise not_found("instrument")
            errors: list[FieldError] = []
            if ben_row["status"] != "active":
                errors.append(FieldError("beneficiary_id", f"beneficiary is {ben_row['status']}"))
            if ins_row["beneficiary_id"] != inp.beneficiary_id:
                errors.append(
                    FieldError("instrument_id", "instrument does not belong to this beneficiary")
                )
            elif ins_row["status"] != "active":
                errors.append(FieldError("instrument_id", "instrument is not active"))
            if inp.method not in RAILS_FOR_INSTRUMENT[ins_row["method"]]:
                errors.append(
                    FieldError(
                        "method", f"{inp.method} cannot pay a {ins_row['method']} instrument"
                    )
                )
            rail_currency = RAIL_CURRENCY.get(inp.method)
            if rail_currency and inp.dest_currency != rail_currency:
                errors.append(
                    FieldError("dest_currency", f"{inp.method} pays {rail_currency} only")
                )
            source_currency = self._resolve_source_currency(inp)
            if not fits_scale(inp.source_amount, source_currency):
                errors.append(
                    FieldError("source_amount", f"has more decimal places than {source_currency}")
                )
            quote = None
            if not errors:
                try:
                    quote = price(
                        source_amount=inp.source_amount,
                        source_currency=source_currency,
                        dest_amount=inp.dest_amount,
                        dest_currency=inp.dest_currency,
                        method=inp.method,
                        fixed_side=inp.fixed_side,
                        fee_bearer=inp.fee_bearer,
                    )
                except PricingError as exc:
                    errors.append(FieldError(exc.field, exc.message))
            if errors:
                raise validation_failed(errors)
            assert quote is not None

            if inp.fixed_side == "fixed_source":
                outcome = self.outcome_for(inp.source_amount, source_currency)
            else:
                outcome = self.outcome_for(inp.dest_amount, inp.dest_currency)
            if outcome == "sync_velocity_blocked":
                raise ApiProblem(
                    403,
                    "velocity_blocked",
                    "payout blocked by risk policy (sandbox trigger: amount ending in .96)",
                )
            balance = self.store.one(
                "SELECT available FROM balances WHERE currency = ?", (source_currency,)
            )
            if balance is None or Decimal(balance["available"]) < quote.total_debited:
                raise ApiProblem(422, "insufficient_balance", "insufficient funds for this payout")

            now = self.clock.time()
            seq = self.store.next_seq()
            payout_id = new_id("pay", now)
            sc = source_currency
            doc: dict[str, Any] = {
                "id": payout_id,
                "merchant_id": self.merchant_id,
                "beneficiary_id": inp.beneficiary_id,
                "instrument_id": inp.instrument_id,
                **({"batch_id": batch_id} if batch_id is not None else {}),
                "status": "created",
                "method": inp.method,
                "source_amount": format_amount(quote.source_amount, sc),
                "source_currency": sc,
                "dest_amount": format_amount(quote.dest_amount, inp.dest_currency),
                "dest_currency": inp.dest_currency,
            }
            if quote.exchange_rate is not None:
                doc["exchange_rate"] = f"{quote.exchange_rate:f}"
            doc.update(
                {
                    "fee": format_amount(quote.fee, sc),
                    "fee_currency": sc,
                    "fee_bearer": inp.fee_bearer,
                    "fixed_side": inp.fixed_side,
                    "total_debited": format_amount(quote.total_debited, sc),
                    "total_debited_currency": sc,
                    "fee_finalized": False,
                    "rail_type": inp.rail_type,
                    "purpose": inp.purpose,
                    "reference": inp.reference,
                }
            )
            if inp.metadata is not None:
                doc["metadata"] = inp.metadata
            doc["created_at"] = doc["updated_at"] = iso(now)
            chosen = OUTCOMES[outcome]
            step = self.config.step_seconds
            plan = {
                "outcome": chosen.name,
                "path": list(chosen.path),
                "index": 0,
                "step": step,
                "created_ts": now,
            }
            self.balances.move(sc, -quote.total_debited, quote.total_debited, now)
            self.store.execute(
                "INSERT INTO payouts (id, seq, created_ts, beneficiary_id, instrument_id,"
                " batch_id, status, dest_currency, reference, next_due_ts, idempotency_key,"
                " plan, doc) VALUES (?, ?, ?, ?, ?, ?, 'created', ?, ?, ?, ?, ?, ?)",
                (
                    payout_id,
                    seq,
                    now,
                    inp.beneficiary_id,
                    inp.instrument_id,
                    batch_id,
                    inp.dest_currency,
                    inp.reference,
                    self._next_due(plan),
                    idempotency_key,
                    store_doc(plan),
                    store_doc(doc),
                ),
            )
            self._record_event(doc, None, "created", now, "merchant", None)
            self.events.emit("payout.created", doc, now)
        return doc

    @staticmethod
    def _next_due(plan: dict[str, Any]) -> float | None:
        index: int = plan["index"]
        if index + 1 >= len(plan["path"]):
            return None
        due: float = plan["created_ts"] + (index + 1) * plan["step"]
        return due

    def _record_event(
        self,
        doc: dict[str, Any],
        previous: str | None,
        status: str,
        at: float,
        actor: str,
        reason: str | None,
    ) -> None:
        seq = self.store.next_seq()
        event: dict[str, Any] = {
            "id": new_id("pev", at),
            "payout_id": doc["id"],
            "merchant_id": self.merchant_id,
            "status": status,
        }
        if previous is not None:
            event["previous_status"] = previous
        event["actor_type"] = actor
        if reason:
            event["metadata"] = {"reason": reason}
        event["occurred_at"] = event["created_at"] = iso(at)
        self.store.execute(
            "INSERT INTO payout_events (id, seq, payout_id, doc) VALUES (?, ?, ?, ?)",
            (event["id"], seq, doc["id"], store_doc(event)),
        )

    def _transition(
        self,
        doc: dict[str, Any],
        plan: dict[str, Any],
        status: str,
        at: float,
        actor: str,
        reason: str | None,
    ) -> None:
        previous = doc["status"]
        doc["status"] = status
        doc["updated_at"] = iso(at)
        stamp = TIMESTAMP_FOR_STATUS.get(status)
        if stamp and stamp not in doc:
            doc[stamp] = iso(at)
        if status == "processing":
            doc["rail_provider"] = "sandbox"
            doc["rail_reference"] = f"SBX-{doc['id'][4:].lower()}"
            doc["network"] = RAIL_NETWORK.get(doc["method"], "rtgs")
        if status == "completed":
            doc["fee_finalized"] = True
        if status in TERMINAL and status != "completed" and reason:
            doc["cancelled_reason"] = reason
        if status in TERMINAL:
            total = Decimal(doc["total_debited"])
            currency = doc["total_debited_currency"]
            if status == "completed":
                self.balances.move(currency, Decimal(0), -total, at)
            else:
                self.balances.move(currency, total, -total, at)
        self._record_event(doc, previous, status, at, actor, reason)
        event_type = EVENT_FOR_STATUS.get(status)
        if event_type:
            if status in _COMPACT_EVENTS:
                data: dict[str, Any] = {
                    "id": doc["id"],
                    "merchant_id": self.merchant_id,
                    "status": status,
                    "reason": reason or "",
                }
            else:
                data = doc
            self.events.emit(event_type, data, at)
        self.store.execute(
            "UPDATE payouts SET status = ?, next_due_ts = ?, plan = ?, doc = ? WHERE id = ?",
            (status, self._next_due(plan), store_doc(plan), store_doc(doc), doc["id"]),
        )

    def apply_due(self, now: float | None = None) -> int:
        """Apply every payout transition due by ``now``; return how many were applied."""
        at = self.clock.time() if now is None else now
        applied = 0
        with self.store.tx():
            rows = self.store.all(
                "SELECT id, plan, doc FROM payouts WHERE next_due_ts IS NOT NULL"
                " AND next_due_ts <= ? ORDER BY next_due_ts, seq",
                (at,),
            )
            for row in rows:
                plan = load(row["plan"])
                doc = load(row["doc"])
                outcome = OUTCOMES[plan["outcome"]]
                while True:
                    due = self._next_due(plan)
                    if due is None or due > at:
                        break
                    plan["index"] += 1
                    status = plan["path"][plan["index"]]
                    final = plan["index"] == len(plan["path"]) - 1
                    actor = ACTOR_FOR_STATUS[status]
                    if final and outcome.final_actor:
                        actor = outcome.final_actor
                    if status == "approved" and doc["status"] == "manual_review":
                        actor = "ops"
                    reason = outcome.reason if final else None
                    self._transition(doc, plan, status, due, actor, reason)
                    applied += 1
        return applied

    def get_payout(self, payout_id: str) -> dict[str, Any]:
        """One payout (with due transitions applied) or 404 ``payout_not_found``."""
        self.apply_due()
        row = self.store.one("SELECT doc FROM payouts WHERE id = ?", (payout_id,))
        if row is None:
            raise not_found("payout")
        return load(row["doc"])

    def list_payouts(
        self,
        *,
        statuses: list[str],
        equals: dict[str, str],
        created_after: float | None,
        created_before: float | None,
        page: Page,
    ) -> Listing:
        """Payouts, newest first, with the spec's filters."""
        self.apply_due()
        where: list[str] = []
        params: list[Any] = []
        if statuses:
            where.append(f"status IN ({', '.join('?' for _ in statuses)})")
            params.extend(statuses)
        for col, value in equals.items():
            where.append(f"{col} = ?")
            params.append(value)
        # Timestamps are shown to the second; filters compare at the same precision.
        return page_of(self.store, "payouts", "payouts", where, params, page,
                       created=(created_after, created_before))  # fmt: skip

    def payout_events(self, payout_id: str) -> list[dict[str, Any]]:
        """Every recorded transition of a payout, oldest first."""
        self.get_payout(payout_id)
        rows = self.store.all(
            "SELECT doc FROM payout_events WHERE payout_id = ? ORDER BY seq", (payout_id,)
        )
        return [load(r["doc"]) for r in rows]

    def cancel_payout(self, payout_id: str, reason: str | None) -> dict[str, Any]:
        """Cancel from a cancellable state (funds released); cancelling twice converges."""
        self.apply_due()
        with self.store.tx():
            row = self.store.one("SELECT plan, doc FROM payouts WHERE id = ?", (payout_id,))
            if row is None:
                raise not_found("payout")
            doc = load(row["doc"])
            if doc["status"] == "cancelled":
                return doc
            if doc["status"] not in CANCELLABLE:
                raise ApiProblem(
                    409,
                    "payout_not_cancellable",
                    f"a payout in status {doc['status']} cannot be cancelled",
                )
            plan = load(row["plan"])
            plan["path"] = [*plan["path"][: plan["index"] + 1], "cancelled"]
            plan["index"] += 1
            self._transition(
                doc,
                plan,
                "cancelled",
                self.clock.time(),
                "merchant",
                reason or "cancelled by merchant",
            )
        return doc

    def ledger(self) -> list[dict[str, Any]]:
        """Every payout ever created, oldest first, with the idempotency key that made it."""
        self.apply_due()
        rows = self.store.all("SELECT doc, idempotency_key FROM payouts ORDER BY seq")
        return [{**load(r["doc"]), "idempotency_key": r["idempotency_key"]} for r in rows]

"""The sandbox's books: beneficiaries, instruments, payouts, balances, webhook records.

Everything here is synchronous and transactional over :class:`~.store.Store`; the
HTTP layer (``app.py``) and the Python handle (``Sandbox``) both call into it.
Payout transitions are applied lazily by :meth:`Bank.apply_due`, which every read
calls first, so state is a pure function of the sandbox clock.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from batchpay.money import fits_scale, format_amount

from .._util import decode_cursor, dumps, encode_cursor, iso, new_id
from ..clock import SandboxClock
from ..config import SandboxConfig
from ..lifecycle import (
    ACTOR_FOR_STATUS,
    CANCELLABLE,
    EVENT_FOR_STATUS,
    OUTCOMES,
    TERMINAL,
    TIMESTAMP_FOR_STATUS,
    outcome_for,
)
from ..pricing import PricingError, price
from ..problems import ApiProblem, FieldError, invalid_parameter, not_found, validation_failed
from ..store import Store, load, store_doc
from ..validation import (
    RAIL_CURRENCY,
    RAIL_NETWORK,
    RAILS_FOR_INSTRUMENT,
    BeneficiaryInput,
    InstrumentInput,
    PayoutInput,
    WebhookInput,
)

_COMPACT_EVENTS = frozenset({"screening_failed", "velocity_blocked"})


@dataclass(frozen=True, slots=True)
class Page:
    """Paging request: how many items and where to start."""

    limit: int
    cursor: str | None


@dataclass(frozen=True, slots=True)
class DeliveryJob:
    """One due webhook delivery: where, what bytes, and the secrets to sign with."""

    id: str
    url: str
    event_id: str
    event_type: str
    body: bytes
    secrets: tuple[str, ...]
    attempts: int


class Bank:
    """Sandbox state and the rules that move it."""

    def __init__(self, store: Store, clock: SandboxClock, config: SandboxConfig) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.merchant_id = config.merchant_id
        with store.tx():
            if store.fresh:
                self._seed_balances()

    # ------------------------------------------------------------------ basics

    def now(self) -> float:
        """Sandbox time, Unix seconds."""
        return self.clock.time()

    def _seed_balances(self) -> None:
        now = self.now()
        for currency, amount in self.config.balances.items():
            self.store.execute(
                "INSERT OR REPLACE INTO balances (currency, available, pending, updated_ts)"
                " VALUES (?, ?, '0', ?)",
                (currency, str(Decimal(amount)), now),
            )
        self.store.mark_seeded()

    def reset(self) -> None:
        """Forget everything and reload the configured balances."""
        with self.store.tx():
            self.store.reset()
            self._seed_balances()

    def _page(
        self,
        table: str,
        scope: str,
        where: list[str],
        params: list[Any],
        page: Page,
    ) -> dict[str, Any]:
        conditions = list(where)
        args = list(params)
        if page.cursor is not None:
            try:
                start = decode_cursor(page.cursor, scope)
            except ValueError as exc:
                raise ApiProblem(400, "invalid_cursor", str(exc)) from exc
            conditions.append("seq < ?")
            args.append(start)
        sql = f"SELECT seq, doc FROM {table}"
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(page.limit + 1)
        rows = self.store.all(sql, args)
        items = rows[: page.limit]
        result: dict[str, Any] = {
            "data": [load(r["doc"]) for r in items],
            "has_more": len(rows) > page.limit,
        }
        if result["has_more"]:
            result["next_cursor"] = encode_cursor(int(items[-1]["seq"]), scope)
        return result

    # ------------------------------------------------------------------ balances

    def _balance_doc(self, row: Any) -> dict[str, Any]:
        currency = row["currency"]
        available = Decimal(row["available"])
        pending = Decimal(row["pending"])
        return {
            "id": f"bal_{currency.lower()}",
            "merchant_id": self.merchant_id,
            "currency": currency,
            "available": format_amount(available, currency),
            "pending": format_amount(pending, currency),
            "total": format_amount(available + pending, currency),
            "updated_at": iso(row["updated_ts"]),
        }

    def list_balances(self) -> list[dict[str, Any]]:
        """Every balance, by currency."""
        self.apply_due()
        rows = self.store.all("SELECT * FROM balances ORDER BY currency")
        return [self._balance_doc(r) for r in rows]

    def get_balance(self, currency: str) -> dict[str, Any]:
        """One balance; 404 ``balance_not_found`` when the merchant holds none."""
        self.apply_due()
        row = self.store.one("SELECT * FROM balances WHERE currency = ?", (currency,))
        if row is None:
            raise not_found("balance")
        return self._balance_doc(row)

    def set_balance(self, currency: str, available: str) -> dict[str, Any]:
        """Set the available funds in one currency (creating the balance if needed)."""
        amount = Decimal(available)
        with self.store.tx():
            row = self.store.one("SELECT pending FROM balances WHERE currency = ?", (currency,))
            pending = row["pending"] if row else "0"
            self.store.execute(
                "INSERT OR REPLACE INTO balances (currency, available, pending, updated_ts)"
                " VALUES (?, ?, ?, ?)",
                (currency, str(amount), pending, self.now()),
            )
        return self.get_balance(currency)

    def _move(self, currency: str, available: Decimal, pending: Decimal, at: float) -> None:
        row = self.store.one("SELECT * FROM balances WHERE currency = ?", (currency,))
        assert row is not None
        self.store.execute(
            "UPDATE balances SET available = ?, pending = ?, updated_ts = ? WHERE currency = ?",
            (
                str(Decimal(row["available"]) + available),
                str(Decimal(row["pending"]) + pending),
                at,
                currency,
            ),
        )

    # ------------------------------------------------------------------ beneficiaries

    def create_beneficiary(self, inp: BeneficiaryInput) -> dict[str, Any]:
        """Create a beneficiary; 422 ``duplicate_beneficiary`` on the same PII fingerprint."""
        with self.store.tx():
            if self.store.one(
                "SELECT id FROM beneficiaries WHERE fingerprint = ?", (inp.fingerprint,)
            ):
                raise ApiProblem(
                    422,
                    "duplicate_beneficiary",
                    "a beneficiary with the same details already exists",
                )
            now = self.now()
            seq = self.store.next_seq()
            doc: dict[str, Any] = {
                "id": new_id("ben", now),
                "merchant_id": self.merchant_id,
                "type": inp.type,
                "status": "active",
                "display_name": inp.display_name,
                "country": inp.country,
            }
            if inp.external_ref is not None:
                doc["external_ref"] = inp.external_ref
            if inp.metadata is not None:
                doc["metadata"] = inp.metadata
            doc["created_at"] = doc["updated_at"] = iso(now)
            self.store.execute(
                "INSERT INTO beneficiaries (id, seq, created_ts, status, type, country,"
                " external_ref, fingerprint, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    doc["id"],
                    seq,
                    now,
                    "active",
                    inp.type,
                    inp.country,
                    inp.external_ref,
                    inp.fingerprint,
                    store_doc(doc),
                ),
            )
            self._emit("beneficiary.created", doc, now)
        return doc

    def get_beneficiary(self, beneficiary_id: str) -> dict[str, Any]:
        """One beneficiary or 404 ``beneficiary_not_found``."""
        row = self.store.one("SELECT doc FROM beneficiaries WHERE id = ?", (beneficiary_id,))
        if row is None:
            raise not_found("beneficiary")
        return load(row["doc"])

    def list_beneficiaries(self, filters: dict[str, str], page: Page) -> dict[str, Any]:
        """Beneficiaries, newest first, filtered by status/type/country/external_ref."""
        where = [f"{col} = ?" for col in filters]
        return self._page("beneficiaries", "beneficiaries", where, list(filters.values()), page)

    # ------------------------------------------------------------------ instruments

    def create_instrument(self, beneficiary_id: str, inp: InstrumentInput) -> dict[str, Any]:
        """Attach an instrument; 422 ``duplicate_instrument`` on the same credential."""
        with self.store.tx():
            self.get_beneficiary(beneficiary_id)
            if self.store.one(
                "SELECT id FROM instruments WHERE beneficiary_id = ? AND fingerprint = ?",
                (beneficiary_id, inp.fingerprint),
            ):
                raise ApiProblem(
                    422,
                    "duplicate_instrument",
                    "an instrument with the same credentials already exists for this beneficiary",
                )
            now = self.now()
            existing = self.store.all(
                "SELECT id, doc FROM instruments WHERE beneficiary_id = ?", (beneficiary_id,)
            )
            is_default = inp.is_default or not existing
            if inp.is_default:
                for row in existing:
                    other = load(row["doc"])
                    if other["is_default"]:
                        other["is_default"] = False
                        other["updated_at"] = iso(now)
                        self.store.execute(
                            "UPDATE instruments SET doc = ? WHERE id = ?",
                            (store_doc(other), row["id"]),
                        )
            seq = self.store.next_seq()
            doc: dict[str, Any] = {
                "id": new_id("ins", now),
                "beneficiary_id": beneficiary_id,
                "merchant_id": self.merchant_id,
                "method": inp.method,
                "currency": inp.currency,
                "country": inp.country,
            }
            if inp.label is not None:
                doc["label"] = inp.label
            doc.update(
                {
                    "display_last4": inp.display_last4,
                    "masked_account": inp.masked_account,
                    "status": "active",
                    "is_default": is_default,
                    "created_at": iso(now),
                    "updated_at": iso(now),
                }
            )
            self.store.execute(
                "INSERT INTO instruments (id, seq, created_ts, beneficiary_id, method, currency,"
                " country, status, fingerprint, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    doc["id"],
                    seq,
                    now,
                    beneficiary_id,
                    inp.method,
                    inp.currency,
                    inp.country,
                    "active",
                    inp.fingerprint,
                    store_doc(doc),
                ),
            )
            self._emit("instrument.created", doc, now)
        return doc

    def get_instrument(self, instrument_id: str) -> dict[str, Any]:
        """One instrument or 404 ``instrument_not_found``."""
        row = self.store.one("SELECT doc FROM instruments WHERE id = ?", (instrument_id,))
        if row is None:
            raise not_found("instrument")
        return load(row["doc"])

    def list_instruments(self, filters: dict[str, str], page: Page) -> dict[str, Any]:
        """Instruments, newest first, filtered by beneficiary/method/currency/country/status."""
        where = [f"{col} = ?" for col in filters]
        scope = "instruments"
        if "beneficiary_id" in filters:
            scope = f"instruments:{filters['beneficiary_id']}"
        return self._page("instruments", scope, where, list(filters.values()), page)

    # ------------------------------------------------------------------ payouts

    def _resolve_source_currency(self, inp: PayoutInput) -> str:
        if inp.source_currency:
            return inp.source_currency
        held = self.store.one("SELECT 1 FROM balances WHERE currency = ?", (inp.dest_currency,))
        return inp.dest_currency if held else self.config.default_source_currency

    def create_payout(self, inp: PayoutInput, idempotency_key: str | None) -> dict[str, Any]:
        """Create a payout: check, price, debit the balance and start its lifecycle."""
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
                outcome = outcome_for(inp.source_amount, source_currency)
            else:
                outcome = outcome_for(inp.dest_amount, inp.dest_currency)
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

            now = self.now()
            seq = self.store.next_seq()
            payout_id = new_id("pay", now)
            sc = source_currency
            doc: dict[str, Any] = {
                "id": payout_id,
                "merchant_id": self.merchant_id,
                "beneficiary_id": inp.beneficiary_id,
                "instrument_id": inp.instrument_id,
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
            self._move(sc, -quote.total_debited, quote.total_debited, now)
            self.store.execute(
                "INSERT INTO payouts (id, seq, created_ts, beneficiary_id, instrument_id,"
                " batch_id, status, dest_currency, reference, next_due_ts, idempotency_key,"
                " plan, doc) VALUES (?, ?, ?, ?, ?, NULL, 'created', ?, ?, ?, ?, ?, ?)",
                (
                    payout_id,
                    seq,
                    now,
                    inp.beneficiary_id,
                    inp.instrument_id,
                    inp.dest_currency,
                    inp.reference,
                    self._next_due(plan),
                    idempotency_key,
                    store_doc(plan),
                    store_doc(doc),
                ),
            )
            self._record_event(doc, None, "created", now, "merchant", None)
            self._emit("payout.created", doc, now)
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
                self._move(currency, Decimal(0), -total, at)
            else:
                self._move(currency, total, -total, at)
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
            self._emit(event_type, data, at)
        self.store.execute(
            "UPDATE payouts SET status = ?, next_due_ts = ?, plan = ?, doc = ? WHERE id = ?",
            (status, self._next_due(plan), store_doc(plan), store_doc(doc), doc["id"]),
        )

    def apply_due(self, now: float | None = None) -> int:
        """Apply every payout transition due by ``now``; return how many were applied."""
        at = self.now() if now is None else now
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
    ) -> dict[str, Any]:
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
        if created_after is not None:
            where.append("CAST(created_ts AS INTEGER) >= ?")
            params.append(int(created_after))
        if created_before is not None:
            where.append("CAST(created_ts AS INTEGER) <= ?")
            params.append(int(created_before))
        return self._page("payouts", "payouts", where, params, page)

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
                doc, plan, "cancelled", self.now(), "merchant", reason or "cancelled by merchant"
            )
        return doc

    def ledger(self) -> list[dict[str, Any]]:
        """Every payout ever created, oldest first, with the idempotency key that made it."""
        self.apply_due()
        rows = self.store.all("SELECT doc, idempotency_key FROM payouts ORDER BY seq")
        return [{**load(r["doc"]), "idempotency_key": r["idempotency_key"]} for r in rows]

    # ------------------------------------------------------------------ webhooks

    def create_webhook(self, inp: WebhookInput) -> dict[str, Any]:
        """Register a subscription; the answer carries the one-time signing secret."""
        now = self.now()
        secret = "whsec_" + secrets.token_hex(32)
        doc: dict[str, Any] = {
            "id": new_id("wbh", now),
            "merchant_id": self.merchant_id,
            "url": inp.url,
            "events": inp.events,
            "status": "active",
            "version": "2024-01-01",
        }
        if inp.metadata is not None:
            doc["metadata"] = inp.metadata
        doc["created_at"] = doc["updated_at"] = iso(now)
        with self.store.tx():
            self.store.execute(
                "INSERT INTO webhooks (id, seq, status, secret, doc) VALUES (?, ?, 'active', ?, ?)",
                (doc["id"], self.store.next_seq(), secret, store_doc(doc)),
            )
        return {**doc, "secret": secret}

    def list_webhooks(self, status: str | None) -> list[dict[str, Any]]:
        """Subscriptions, newest first."""
        if status:
            rows = self.store.all(
                "SELECT doc FROM webhooks WHERE status = ? ORDER BY seq DESC", (status,)
            )
        else:
            rows = self.store.all("SELECT doc FROM webhooks ORDER BY seq DESC")
        return [load(r["doc"]) for r in rows]

    def get_webhook(self, webhook_id: str) -> dict[str, Any]:
        """One subscription or 404 ``webhook_subscription_not_found``."""
        row = self.store.one("SELECT doc FROM webhooks WHERE id = ?", (webhook_id,))
        if row is None:
            raise not_found("webhook_subscription")
        return load(row["doc"])

    def rotate_webhook_secret(self, webhook_id: str) -> str:
        """New secret now; the previous one keeps co-signing for the grace window."""
        with self.store.tx():
            row = self.store.one("SELECT secret FROM webhooks WHERE id = ?", (webhook_id,))
            if row is None:
                raise not_found("webhook_subscription")
            secret = "whsec_" + secrets.token_hex(32)
            self.store.execute(
                "UPDATE webhooks SET secret = ?, previous_secret = ?, previous_until = ?"
                " WHERE id = ?",
                (
                    secret,
                    row["secret"],
                    self.now() + self.config.webhook_rotation_grace_seconds,
                    webhook_id,
                ),
            )
        return secret

    def _emit(self, event_type: str, data: dict[str, Any], at: float) -> None:
        event_id = new_id("evt", at)
        body = dumps({"id": event_id, "type": event_type, "created_at": iso(at), "data": data})
        self.store.execute(
            "INSERT INTO webhook_events (id, seq, type, created_ts, body) VALUES (?, ?, ?, ?, ?)",
            (event_id, self.store.next_seq(), event_type, at, body.decode()),
        )
        for row in self.store.all("SELECT id, doc FROM webhooks WHERE status = 'active'"):
            sub = load(row["doc"])
            if "*" not in sub["events"] and event_type not in sub["events"]:
                continue
            delivery: dict[str, Any] = {
                "id": new_id("whd", at),
                "event_id": event_id,
                "subscription_id": row["id"],
                "status": "pending",
                "url": sub["url"],
                "attempts": 0,
                "max_attempts": len(self.config.webhook_retry_schedule) + 1,
                "next_retry_at": iso(at),
                "created_at": iso(at),
                "updated_at": iso(at),
            }
            self.store.execute(
                "INSERT INTO deliveries (id, seq, event_id, subscription_id, status, attempts,"
                " next_attempt_ts, doc) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)",
                (
                    delivery["id"],
                    self.store.next_seq(),
                    event_id,
                    row["id"],
                    at,
                    store_doc(delivery),
                ),
            )

    def due_deliveries(self, now: float | None = None) -> list[DeliveryJob]:
        """Deliveries whose next attempt is due, oldest first."""
        at = self.now() if now is None else now
        rows = self.store.all(
            "SELECT d.id, d.attempts, e.id AS event_id, e.type, e.body, w.secret,"
            " w.previous_secret, w.previous_until, w.doc AS sub"
            " FROM deliveries d JOIN webhook_events e ON e.id = d.event_id"
            " JOIN webhooks w ON w.id = d.subscription_id"
            " WHERE d.status = 'pending' AND d.next_attempt_ts <= ? ORDER BY d.seq",
            (at,),
        )
        jobs = []
        for r in rows:
            keys = [r["secret"]]
            if r["previous_secret"] and (r["previous_until"] or 0) > at:
                keys.append(r["previous_secret"])
            jobs.append(
                DeliveryJob(
                    id=r["id"],
                    url=load(r["sub"])["url"],
                    event_id=r["event_id"],
                    event_type=r["type"],
                    body=r["body"].encode(),
                    secrets=tuple(keys),
                    attempts=int(r["attempts"]),
                )
            )
        return jobs

    def record_delivery(
        self,
        job: DeliveryJob,
        *,
        status_code: int | None,
        error: str | None,
        duration_ms: int,
        request_headers: dict[str, str],
        response_body: str,
    ) -> None:
        """Record one attempt: success, or schedule the next retry, or abandon."""
        now = self.now()
        with self.store.tx():
            row = self.store.one("SELECT doc FROM deliveries WHERE id = ?", (job.id,))
            assert row is not None
            doc = load(row["doc"])
            attempts = job.attempts + 1
            ok = status_code is not None and 200 <= status_code < 300
            doc.update(
                {
                    "attempts": attempts,
                    "request_headers": request_headers,
                    "duration_ms": duration_ms,
                    "updated_at": iso(now),
                }
            )
            if status_code is not None:
                doc["response_status"] = status_code
                doc["response_body"] = response_body[:1024]
                doc.pop("error", None)
            if error is not None:
                doc["error"] = error
                doc.pop("response_status", None)
            next_ts: float | None = None
            if ok:
                doc["status"] = "success"
                doc["delivered_at"] = iso(now)
                doc.pop("next_retry_at", None)
            elif attempts >= doc["max_attempts"]:
                doc["status"] = "abandoned"
                doc.pop("next_retry_at", None)
            else:
                next_ts = now + self.config.webhook_retry_schedule[attempts - 1]
                doc["next_retry_at"] = iso(next_ts)
            self.store.execute(
                "UPDATE deliveries SET status = ?, attempts = ?, next_attempt_ts = ?, doc = ?"
                " WHERE id = ?",
                (doc["status"], attempts, next_ts, store_doc(doc), job.id),
            )

    def deliveries(self) -> list[dict[str, Any]]:
        """Every webhook delivery record, oldest first (with its event type)."""
        rows = self.store.all(
            "SELECT d.doc, e.type FROM deliveries d JOIN webhook_events e ON e.id = d.event_id"
            " ORDER BY d.seq"
        )
        return [{**load(r["doc"]), "event_type": r["type"]} for r in rows]

    def webhook_events(self) -> list[dict[str, Any]]:
        """Every webhook event generated, oldest first (the exact bodies sent)."""
        rows = self.store.all("SELECT body FROM webhook_events ORDER BY seq")
        return [load(r["body"]) for r in rows]


def parse_limit(raw: str | None, *, strict: bool) -> int:
    """``limit``: strict endpoints answer 400 ``invalid_limit``; older ones cap silently."""
    if raw is None:
        return 20
    try:
        value = int(raw)
    except ValueError:
        if strict:
            raise ApiProblem(
                400, "invalid_limit", "limit must be an integer from 1 to 100"
            ) from None
        return 20
    if strict and not 1 <= value <= 100:
        raise ApiProblem(400, "invalid_limit", "limit must be an integer from 1 to 100")
    if value < 1:
        return 20
    return min(value, 100)


def check_choice(name: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    """A query parameter that must be one of ``allowed``."""
    if value is not None and value not in allowed:
        raise invalid_parameter(name, f"must be one of {', '.join(allowed)}")
    return value

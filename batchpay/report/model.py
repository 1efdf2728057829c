"""The report's model: outcomes, rows, control totals, and reading a report back.

Outcomes (:class:`Outcome`) and the control-total group each falls in:

- not submitted: ``invalid``, ``duplicate_in_file``, ``already_paid``, ``rejected``, ``skipped``
- submitted, completed: ``completed``
- submitted, failed or returned: ``failed``, ``returned``, ``screening_failed``,
  ``velocity_blocked``, ``cancelled``
- submitted, pending: ``pending``, ``unknown``

For every currency: requested = not submitted + submitted, and submitted = completed +
failed or returned + pending, in row counts and in amounts (:meth:`Report.check_totals`).
A row *needs attention* (:data:`ATTENTION_OUTCOMES`) unless its money is paid or on its
way: only ``completed``, ``pending`` and ``already_paid`` rows need no person
(``duplicate_in_file`` does: either the file is wrong or a payment meant twice was made once).
Rows without a readable amount or currency are in no currency's totals
(:attr:`Report.rows_without_amount`).

What the balances gave (:attr:`Report.funding`, one :class:`FundingTotals` per funding
currency, the balance a payout's ``total_debited`` is drawn from) follows the provider's
ledger: a payout's ``total_debited`` (amount plus fee) leaves the balance when it is
created; a completed payout keeps it, one still in flight holds it, and a failed,
returned, screened-out, blocked or cancelled one gives all of it back, fee included. So
*debited* = completed + in flight, the fall of the balance's available funds, and
*refunded* is listed beside it, not in it. Every figure is the sum of the rows' own
``Total debited`` (and ``Fee``) cells with those outcomes (an ``already_paid`` row's
money belongs to the earlier run). A currency's :class:`CurrencyTotals` ``fees`` and
``total_debited`` are its funding figures.
"""

from __future__ import annotations

import json
import operator
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal, Inexact, InvalidOperation, localcontext
from enum import StrEnum
from pathlib import Path
from typing import Any

from batchpay.money import currency_scale, fits_scale, format_amount, mask_account

SANDBOX_BANNER = "SANDBOX — no money moved"


class Outcome(StrEnum):
    COMPLETED = "completed"
    PENDING = "pending"
    FAILED = "failed"
    RETURNED = "returned"
    SCREENING_FAILED = "screening_failed"
    VELOCITY_BLOCKED = "velocity_blocked"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    INVALID = "invalid"
    DUPLICATE_IN_FILE = "duplicate_in_file"
    ALREADY_PAID = "already_paid"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"
    DUPLICATE_PAYOUT = "duplicate_payout"


# What each outcome means, for people (the XLSX summary shows it beside the counts).
OUTCOME_MEANINGS: dict[Outcome, str] = {
    Outcome.COMPLETED: "paid: the payout reached completed",
    Outcome.PENDING: "payout created, not final yet; resume the run to follow it",
    Outcome.FAILED: "payout failed at the bank rail",
    Outcome.RETURNED: "payout sent and returned by the bank",
    Outcome.SCREENING_FAILED: "refused by compliance screening",
    Outcome.VELOCITY_BLOCKED: "blocked by a velocity limit",
    Outcome.CANCELLED: "payout cancelled before it was sent",
    Outcome.REJECTED: "refused by the API; no payout was created",
    Outcome.INVALID: "failed validation; not sent",
    Outcome.DUPLICATE_IN_FILE: "same as an earlier row of this file; not sent",
    Outcome.ALREADY_PAID: "paid by an earlier run; not sent again",
    Outcome.UNKNOWN: "not yet known whether a payout exists; resume the run",
    Outcome.SKIPPED: "deliberately not sent (e.g. held for review of changed bank details)",
    Outcome.DUPLICATE_PAYOUT: "the provider holds a second payout for this row that could "
    "not be cancelled; a person must recall it",
}

NOT_SUBMITTED_OUTCOMES: frozenset[Outcome] = frozenset(
    {
        Outcome.INVALID,
        Outcome.DUPLICATE_IN_FILE,
        Outcome.ALREADY_PAID,
        Outcome.REJECTED,
        Outcome.SKIPPED,
    }
)
COMPLETED_OUTCOMES: frozenset[Outcome] = frozenset({Outcome.COMPLETED})
FAILED_OR_RETURNED_OUTCOMES: frozenset[Outcome] = frozenset(
    {
        Outcome.FAILED,
        Outcome.RETURNED,
        Outcome.SCREENING_FAILED,
        Outcome.VELOCITY_BLOCKED,
        Outcome.CANCELLED,
    }
)
PENDING_OUTCOMES: frozenset[Outcome] = frozenset(
    {Outcome.PENDING, Outcome.UNKNOWN, Outcome.DUPLICATE_PAYOUT}
)
SUBMITTED_OUTCOMES: frozenset[Outcome] = (
    COMPLETED_OUTCOMES | FAILED_OR_RETURNED_OUTCOMES | PENDING_OUTCOMES
)
ATTENTION_OUTCOMES: frozenset[Outcome] = frozenset(Outcome) - {
    Outcome.COMPLETED,
    Outcome.PENDING,
    Outcome.ALREADY_PAID,
}

_FINAL_PAYOUT_STATUSES = frozenset(
    {"completed", "failed", "returned", "screening_failed", "velocity_blocked", "cancelled"}
)


def outcome_for_payout_status(status: str) -> Outcome:
    """The outcome of a row whose payout has ``status`` (non-final statuses are ``pending``)."""
    return Outcome(status) if status in _FINAL_PAYOUT_STATUSES else Outcome.PENDING


# --------------------------------------------------------------------------------------
# The model


@dataclass(frozen=True, kw_only=True, slots=True)
class ReportRow:
    """One input row and what became of it. Blank text is ``""``; absent amounts are None.

    ``amount``/``currency`` is what the beneficiary receives; ``source_amount`` and
    ``total_debited`` are drawn from the balance in ``source_currency`` (or
    ``total_debited_currency`` when the API names it). ``masked_account`` is masked again
    on construction, so an unmasked number can never reach a report file.
    """

    row: int
    outcome: str
    reference: str = ""
    beneficiary_ref: str = ""
    beneficiary_name: str = ""
    payout_id: str = ""
    beneficiary_id: str = ""
    instrument_id: str = ""
    payout_status: str = ""
    error_code: str = ""
    error_message: str = ""
    request_id: str = ""
    idempotency_key: str = ""
    amount: Decimal | None = None
    currency: str = ""
    source_amount: Decimal | None = None
    source_currency: str = ""
    fee: Decimal | None = None
    fee_currency: str = ""
    exchange_rate: Decimal | None = None
    total_debited: Decimal | None = None
    total_debited_currency: str = ""
    masked_account: str = ""
    attempt: int = 0
    related_run: str | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.outcome not in _OUTCOME_VALUES:
            raise ValueError(f"row {self.row}: unknown outcome {self.outcome!r}")
        object.__setattr__(self, "outcome", Outcome(self.outcome))
        object.__setattr__(self, "masked_account", mask_account(self.masked_account))
        for name in _DECIMAL_FIELDS:
            value = getattr(self, name)
            if value is not None and not (isinstance(value, Decimal) and value.is_finite()):
                raise ValueError(f"row {self.row}: {name} must be a finite Decimal, not {value!r}")

    @property
    def needs_attention(self) -> bool:
        """Whether a person must look at this row (see :data:`ATTENTION_OUTCOMES`)."""
        return self.outcome in ATTENTION_OUTCOMES

    @property
    def has_amount(self) -> bool:
        """Whether the row has a readable amount and currency (it counts in the totals)."""
        return self.amount is not None and self.currency != ""

    @property
    def fee_currency_or_default(self) -> str:
        """The fee's currency; the balance's currency when the API did not name it."""
        return self.fee_currency or self.source_currency or self.currency

    @property
    def debit_currency(self) -> str:
        """The currency ``total_debited`` is drawn in."""
        return self.total_debited_currency or self.source_currency or self.currency

    @property
    def funded_from(self) -> str:
        """The balance that funds a cross-currency payout; ``""`` when it is paid from its own
        currency (or nothing says which balance funds it)."""
        funding = self.total_debited_currency or self.source_currency
        return funding if funding and self.currency and funding != self.currency else ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: field order, amounts as decimal strings."""
        out: dict[str, Any] = dict(zip(_ROW_FIELDS, _row_values(self), strict=True))
        out["outcome"] = str(out["outcome"])
        if (rate := out["exchange_rate"]) is not None:
            out["exchange_rate"] = f"{rate:f}"
        for name in _AMOUNT_FIELDS:
            if (value := out[name]) is not None:
                out[name] = _amount_text(value, self._currency_of(name))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportRow:
        """Read a row written by :meth:`to_dict`; unknown keys are an error."""
        extra = set(data) - set(_ROW_FIELDS)
        if extra:
            raise ValueError(f"unknown report row fields: {sorted(extra)}")
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            if name in _DECIMAL_FIELDS:
                kwargs[name] = _parse_decimal(value, name)
            elif name in ("row", "attempt"):
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ValueError(f"{name} must be an integer, not {value!r}")
                kwargs[name] = value
            elif name == "related_run":
                if value is not None and not isinstance(value, str):
                    raise ValueError(f"related_run must be text or null, not {value!r}")
                kwargs[name] = value
            else:
                if not isinstance(value, str):
                    raise ValueError(f"{name} must be text, not {value!r}")
                kwargs[name] = value
        return cls(**kwargs)

    def _currency_of(self, name: str) -> str:
        if name == "amount":
            return self.currency
        if name == "source_amount":
            return self.source_currency or self.currency
        if name == "fee":
            return self.fee_currency_or_default
        return self.debit_currency


_OUTCOME_VALUES = frozenset(o.value for o in Outcome)
_ROW_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ReportRow))
_DECIMAL_FIELDS = frozenset({"amount", "source_amount", "fee", "exchange_rate", "total_debited"})
_AMOUNT_FIELDS = tuple(n for n in _ROW_FIELDS if n in _DECIMAL_FIELDS - {"exchange_rate"})
_row_values = operator.attrgetter(*_ROW_FIELDS)


@dataclass(frozen=True, slots=True)
class Tally:
    """A number of rows and the exact sum of their amounts."""

    count: int = 0
    amount: Decimal = Decimal(0)

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.count + other.count, _exact_sum((self.amount, other.amount)))


@dataclass(frozen=True, slots=True)
class CurrencyTotals:
    """Control totals for one currency.

    ``requested`` … ``pending`` count rows paid in this currency (by ``currency``);
    ``fees``, ``total_debited`` and ``refunded`` are this currency's balance figures
    (:class:`FundingTotals`: debited = completed + in flight, fees included; refunded given
    back by failed or returned payouts); ``declared`` is what the file declared, when it did.
    """

    currency: str
    requested: Tally
    not_submitted: Tally
    submitted: Tally
    completed: Tally
    failed_or_returned: Tally
    pending: Tally
    fees: Decimal
    total_debited: Decimal
    declared: Tally | None = None
    refunded: Decimal = Decimal(0)

    def problems(self) -> list[str]:
        """Why these totals do not add up (or disagree with the declared ones); empty if fine."""
        out: list[str] = []
        if self.not_submitted + self.submitted != self.requested:
            out.append(
                f"{self.currency}: requested {self._show(self.requested)} ≠ not submitted "
                f"{self._show(self.not_submitted)} + submitted {self._show(self.submitted)}"
            )
        parts = self.completed + self.failed_or_returned + self.pending
        if parts != self.submitted:
            out.append(
                f"{self.currency}: submitted {self._show(self.submitted)} ≠ completed "
                f"{self._show(self.completed)} + failed or returned "
                f"{self._show(self.failed_or_returned)} + pending {self._show(self.pending)}"
            )
        if self.matches_declared is False:
            assert self.declared is not None
            out.append(
                f"{self.currency}: the file declares {self._show(self.declared)} but has "
                f"{self._show(self.requested)}"
            )
        return out

    @property
    def adds_up(self) -> bool:
        """Whether requested = not submitted + submitted = not submitted + the three parts."""
        return self.not_submitted + self.submitted == self.requested and (
            self.completed + self.failed_or_returned + self.pending == self.submitted
        )

    @property
    def matches_declared(self) -> bool | None:
        """Whether the requested totals equal the declared ones (None when none declared)."""
        if self.declared is None:
            return None
        return self.declared == self.requested

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with amounts as decimal strings."""
        out: dict[str, Any] = {}
        for name in _TALLY_LINES:
            tally: Tally = getattr(self, name)
            out[name] = self._tally_dict(tally)
        out["fees"] = _amount_text(self.fees, self.currency)
        out["total_debited"] = _amount_text(self.total_debited, self.currency)
        out["refunded"] = _amount_text(self.refunded, self.currency)
        out["declared"] = None if self.declared is None else self._tally_dict(self.declared)
        out["adds_up"] = self.adds_up
        out["matches_declared"] = self.matches_declared
        return out

    def _tally_dict(self, tally: Tally) -> dict[str, Any]:
        return {"count": tally.count, "amount": _amount_text(tally.amount, self.currency)}

    def _show(self, tally: Tally) -> str:
        return f"{tally.count} rows / {_amount_text(tally.amount, self.currency)}"


@dataclass(frozen=True, slots=True)
class FundingTotals:
    """What one balance (a funding currency) gave to this run's payouts.

    Each :class:`Tally` counts payouts and sums their ``total_debited`` (amount plus fee)
    drawn from this balance: ``completed`` kept, ``in_flight`` still held, ``refunded``
    given back (failed, returned, …). ``fees`` are those of the completed and in-flight
    payouts (included in ``debited``), ``fees_refunded`` those given back with ``refunded``.
    ``cross_currency`` counts the rows paid in another currency out of this balance.
    """

    currency: str
    completed: Tally
    in_flight: Tally
    refunded: Tally
    fees: Decimal
    fees_refunded: Decimal
    cross_currency: int

    @property
    def debited(self) -> Decimal:
        """What left the balance and stays gone or held: completed + in flight."""
        return _exact_sum((self.completed.amount, self.in_flight.amount))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with amounts as decimal strings."""
        cur = self.currency
        return {
            "debited": _amount_text(self.debited, cur),
            **{
                name: {"count": t.count, "amount": _amount_text(t.amount, cur)}
                for name, t in (
                    ("completed", self.completed),
                    ("in_flight", self.in_flight),
                    ("refunded", self.refunded),
                )
            },
            "fees": _amount_text(self.fees, cur),
            "fees_refunded": _amount_text(self.fees_refunded, cur),
            "cross_currency_rows": self.cross_currency,
        }


_TALLY_LINES = (
    "requested",
    "not_submitted",
    "submitted",
    "completed",
    "failed_or_returned",
    "pending",
)


_MEMO: dict[int, dict[str, tuple[tuple[Any, ...], Any]]] = {}
"""Per live report (by id, dropped when it is freed): what :meth:`Report._remembered`
computed, and from what."""


@dataclass
class Report:
    """A run's reconciliation report: the run, its rows, and totals computed from them."""

    run_id: str
    file_name: str
    file_sha256: str
    environment: str
    api_url: str
    generated_at: datetime
    rows: list[ReportRow] = field(default_factory=list)
    declared_totals: dict[str, Tally] | None = None

    def _remembered(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, or its value from the last call if the rows (the very same
        objects, in the same order) and the declared totals are unchanged since: each
        report writer and the summary ask for funding and totals (funding 4 times, totals
        twice per written run). The key holds the rows themselves, so no row's identity
        can be reused by another; what is remembered lives beside the report, not in its
        fields (``vars(report)`` builds a report), and goes with it."""
        declared = tuple((self.declared_totals or {}).items())
        key = (declared, *self.rows)
        memo = _MEMO.get(id(self))
        if memo is None:
            memo = _MEMO[id(self)] = {}
            weakref.finalize(self, _MEMO.pop, id(self), None)
        held = memo.get(name)
        if held is not None:
            old, value = held
            if (
                len(old) == len(key)
                and old[0] == declared
                and all(a is b for a, b in zip(old[1:], key[1:], strict=True))
            ):
                return value
        value = compute()
        memo[name] = (key, value)
        return value

    def __post_init__(self) -> None:
        if self.environment not in ("sandbox", "live"):
            raise ValueError(f"environment must be 'sandbox' or 'live', not {self.environment!r}")
        if self.generated_at.tzinfo is None or self.generated_at.utcoffset() is None:
            raise ValueError("generated_at must be an aware datetime")

    @property
    def is_sandbox(self) -> bool:
        """True when the run used the sandbox, so no money moved."""
        return self.environment == "sandbox"

    @property
    def funding(self) -> dict[str, FundingTotals]:
        """What each balance gave, per funding currency, in currency-code order."""
        return dict(self._remembered("funding", self._funding))

    def _funding(self) -> dict[str, FundingTotals]:
        debits: dict[str, dict[str, list[Decimal]]] = {}
        fees: dict[str, dict[str, list[Decimal]]] = {}
        cross: dict[str, int] = {}
        for r in self.rows:
            group = _funding_group(r.outcome)
            if group is None:
                continue
            if r.total_debited is not None:
                debits.setdefault(r.debit_currency, {}).setdefault(group, []).append(
                    r.total_debited
                )
                if r.funded_from:
                    cross[r.funded_from] = cross.get(r.funded_from, 0) + 1
            if r.fee is not None:
                kept = "refunded" if group == "refunded" else "kept"
                fees.setdefault(r.fee_currency_or_default, {}).setdefault(kept, []).append(r.fee)
        out: dict[str, FundingTotals] = {}
        for cur in sorted(set(debits) | set(fees)):
            groups = debits.get(cur, {})
            paid = fees.get(cur, {})
            out[cur] = FundingTotals(
                currency=cur,
                completed=_sum_tally(groups.get("completed", [])),
                in_flight=_sum_tally(groups.get("in_flight", [])),
                refunded=_sum_tally(groups.get("refunded", [])),
                fees=_exact_sum(paid.get("kept", [])),
                fees_refunded=_exact_sum(paid.get("refunded", [])),
                cross_currency=cross.get(cur, 0),
            )
        return out

    @property
    def totals(self) -> dict[str, CurrencyTotals]:
        """Control totals per currency, in currency-code order."""
        return dict(self._remembered("totals", self._totals))

    def _totals(self) -> dict[str, CurrencyTotals]:
        declared = self.declared_totals or {}
        by_currency: dict[str, list[ReportRow]] = {}
        for r in self.rows:
            if r.has_amount:
                by_currency.setdefault(r.currency, []).append(r)
        funding = self.funding
        currencies = sorted(set(by_currency) | set(funding) | set(declared))
        out: dict[str, CurrencyTotals] = {}
        for cur in currencies:
            rows = by_currency.get(cur, [])
            funds = funding.get(cur)
            out[cur] = CurrencyTotals(
                currency=cur,
                requested=_tally(rows),
                not_submitted=_tally(r for r in rows if r.outcome in NOT_SUBMITTED_OUTCOMES),
                submitted=_tally(r for r in rows if r.outcome in SUBMITTED_OUTCOMES),
                completed=_tally(r for r in rows if r.outcome in COMPLETED_OUTCOMES),
                failed_or_returned=_tally(
                    r for r in rows if r.outcome in FAILED_OR_RETURNED_OUTCOMES
                ),
                pending=_tally(r for r in rows if r.outcome in PENDING_OUTCOMES),
                fees=funds.fees if funds else Decimal(0),
                total_debited=funds.debited if funds else Decimal(0),
                declared=declared.get(cur),
                refunded=funds.refunded.amount if funds else Decimal(0),
            )
        return out

    @property
    def rows_without_amount(self) -> int:
        """Rows with no readable amount or currency; they are in no currency's totals."""
        return sum(1 for r in self.rows if not r.has_amount)

    @property
    def outcome_counts(self) -> dict[str, int]:
        """Number of rows per outcome, every outcome listed, in :class:`Outcome` order."""
        counts = {o.value: 0 for o in Outcome}
        for r in self.rows:
            counts[r.outcome] += 1
        return counts

    @property
    def attention_count(self) -> int:
        """Number of rows that need a person."""
        return sum(1 for r in self.rows if r.needs_attention)

    def rows_for_people(self) -> list[ReportRow]:
        """Rows in the order people read them: needing attention first, then by row number."""
        return sorted(self.rows, key=lambda r: (not r.needs_attention, r.row))

    def check_totals(self, totals: Mapping[str, CurrencyTotals] | None = None) -> list[str]:
        """Every way the control totals fail to add up or to match the declared ones."""
        totals = self.totals if totals is None else totals
        problems = [p for t in totals.values() for p in t.problems()]
        counted = sum(t.requested.count for t in totals.values()) + self.rows_without_amount
        if counted != len(self.rows):
            problems.append(f"{len(self.rows)} rows but {counted} counted in the totals")
        return problems

    def to_dict(self) -> dict[str, Any]:
        """``{"run", "totals", "rows"}``: JSON-ready, stable key order, rows in file order."""
        totals = self.totals
        declared = None
        if self.declared_totals is not None:
            declared = {
                cur: {"count": t.count, "amount": _amount_text(t.amount, cur)}
                for cur, t in sorted(self.declared_totals.items())
            }
        return {
            "run": {
                "run_id": self.run_id,
                "file_name": self.file_name,
                "file_sha256": self.file_sha256,
                "environment": self.environment,
                "api_url": self.api_url,
                "generated_at": _iso_utc(self.generated_at),
                "declared_totals": declared,
            },
            "totals": {
                "rows": len(self.rows),
                "rows_needing_attention": self.attention_count,
                "rows_without_amount": self.rows_without_amount,
                "by_outcome": self.outcome_counts,
                "by_currency": {cur: t.to_dict() for cur, t in totals.items()},
                "by_funding_currency": {cur: f.to_dict() for cur, f in self.funding.items()},
                "adds_up": not self.check_totals(totals),
            },
            "rows": [r.to_dict() for r in sorted(self.rows, key=lambda r: r.row)],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """Read a report written by :meth:`to_dict`; the totals are computed again."""
        try:
            run = data["run"]
            generated_at = datetime.fromisoformat(run["generated_at"])
            declared: dict[str, Tally] | None = None
            if run.get("declared_totals") is not None:
                declared = {
                    cur: Tally(int(t["count"]), _require_decimal(t["amount"], "declared amount"))
                    for cur, t in run["declared_totals"].items()
                }
            return cls(
                run_id=run["run_id"],
                file_name=run["file_name"],
                file_sha256=run["file_sha256"],
                environment=run["environment"],
                api_url=run["api_url"],
                generated_at=generated_at,
                rows=[ReportRow.from_dict(r) for r in data["rows"]],
                declared_totals=declared,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a batchpay report: {exc!r}") from exc


def load_report(path: Path) -> Report:
    """Read a report's JSON file back into a :class:`Report`."""
    return Report.from_dict(json.loads(path.read_text(encoding="utf-8")))


# --------------------------------------------------------------------------------------
# Money and text helpers


def _exact_sum(values: Iterable[Decimal]) -> Decimal:
    # Inexact is trapped: a sum too long for the precision raises instead of rounding.
    with localcontext() as ctx:
        ctx.prec = 60
        ctx.traps[Inexact] = True
        return sum(values, Decimal(0))


def _funding_group(outcome: str) -> str | None:
    """Where a row's debit stands on its balance: kept, held, given back, or not this run's."""
    if outcome in COMPLETED_OUTCOMES:
        return "completed"
    if outcome in PENDING_OUTCOMES:
        return "in_flight"
    if outcome in FAILED_OR_RETURNED_OUTCOMES:
        return "refunded"
    return None


def _sum_tally(amounts: list[Decimal]) -> Tally:
    return Tally(len(amounts), _exact_sum(amounts))


def _tally(rows: Iterable[ReportRow]) -> Tally:
    amounts = [r.amount for r in rows if r.amount is not None]
    return Tally(len(amounts), _exact_sum(amounts))


# Up to this many digits an amount already at its currency's scale is written as it is
# (quantize would return it unchanged; beyond the context's precision it raises instead).
_EXACT_DIGITS = 28


def _at_scale(amount: Decimal, currency: str) -> bool:
    """Whether ``amount`` is written with exactly its currency's decimals (the usual case:
    no quantize needed to show it)."""
    _, digits, exponent = amount.as_tuple()
    return exponent == -currency_scale(currency) and len(digits) <= _EXACT_DIGITS


def _amount_scale(amount: Decimal, currency: str) -> int:
    """Decimals to show: the currency's, or more when the amount has more (never round)."""
    if _at_scale(amount, currency) or fits_scale(amount, currency):
        return currency_scale(currency)
    exponent = amount.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return -exponent


def _amount_text(amount: Decimal, currency: str) -> str:
    """Plain decimal string at the currency's scale; more digits rather than rounding."""
    if _at_scale(amount, currency):
        return f"{amount:f}"
    if fits_scale(amount, currency):
        return format_amount(amount, currency)
    return f"{amount.normalize():f}"


def _parse_decimal(value: Any, name: str) -> Decimal | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a decimal string, not {value!r}")
    try:
        return Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"{name} is not a decimal string: {value!r}") from exc


def _require_decimal(value: Any, name: str) -> Decimal:
    parsed = _parse_decimal(value, name)
    if parsed is None:
        raise ValueError(f"{name} is missing")
    return parsed


def _iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

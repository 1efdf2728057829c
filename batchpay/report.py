"""The reconciliation report: one row per input row, control totals per currency.

:class:`Report` holds the run and its :class:`ReportRow` s; :func:`write_report` writes it as

``<stem>.csv``
    one line per input row, rows needing a person first (then by row number), UTF-8 with a
    BOM so Excel reads accents right, friendly column names, amounts as plain decimal strings.
``<stem>-totals.csv``
    the control totals, one line per currency; a file of its own so a machine can read it
    without skipping past the rows.
``<stem>.xlsx``
    a "Summary" sheet (the run, a SANDBOX banner when no money moved, control totals, rows
    by outcome) and a "Rows" sheet laid out for accountants: amounts are numbers at the
    currency's scale, ids and references are text, rows needing a person come first.
``<stem>.json``
    ``{"run": ..., "totals": ..., "rows": ...}`` in file row order; :meth:`Report.from_dict`
    (or :func:`load_report`) reads it back.

Every text cell of the CSV and XLSX files is neutralised against formula injection: text
starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``.
Amounts are numbers, never text, and are not touched. No account number appears other than
masked (:func:`batchpay.money.mask_account` is applied again to every row, which is harmless
on an already masked value).

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
(:attr:`Report.rows_without_amount`). Fees and total debited are summed over the payouts
this run submitted (an ``already_paid`` row's fee belongs to the earlier run), per fee
currency and per balance currency.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal, Inexact, InvalidOperation, localcontext
from enum import StrEnum
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter

from batchpay.errors import ReportError
from batchpay.files import create_private_file, make_private_dir
from batchpay.money import currency_scale, fits_scale, format_amount, mask_account

__all__ = [
    "ATTENTION_OUTCOMES",
    "COMPLETED_OUTCOMES",
    "FAILED_OR_RETURNED_OUTCOMES",
    "NOT_SUBMITTED_OUTCOMES",
    "OUTCOME_MEANINGS",
    "PENDING_OUTCOMES",
    "SUBMITTED_OUTCOMES",
    "CurrencyTotals",
    "Outcome",
    "Report",
    "ReportPaths",
    "ReportRow",
    "Tally",
    "check_out_dir",
    "load_report",
    "outcome_for_payout_status",
    "summary_lines",
    "write_report",
]

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
PENDING_OUTCOMES: frozenset[Outcome] = frozenset({Outcome.PENDING, Outcome.UNKNOWN})
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: field order, amounts as decimal strings."""
        out: dict[str, Any] = {}
        for name in _ROW_FIELDS:
            value = getattr(self, name)
            if name == "outcome":
                value = str(value)
            elif name == "exchange_rate":
                value = None if value is None else f"{value:f}"
            elif name in _DECIMAL_FIELDS:
                value = None if value is None else _amount_text(value, self._currency_of(name))
            out[name] = value
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
    ``fees`` and ``total_debited`` are the payouts this run submitted that charged or drew
    this currency; ``declared`` is what the file declared, when it did.
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
        out["declared"] = None if self.declared is None else self._tally_dict(self.declared)
        out["adds_up"] = self.adds_up
        out["matches_declared"] = self.matches_declared
        return out

    def _tally_dict(self, tally: Tally) -> dict[str, Any]:
        return {"count": tally.count, "amount": _amount_text(tally.amount, self.currency)}

    def _show(self, tally: Tally) -> str:
        return f"{tally.count} rows / {_amount_text(tally.amount, self.currency)}"


_TALLY_LINES = (
    "requested",
    "not_submitted",
    "submitted",
    "completed",
    "failed_or_returned",
    "pending",
)


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
    def totals(self) -> dict[str, CurrencyTotals]:
        """Control totals per currency, in currency-code order."""
        declared = self.declared_totals or {}
        by_currency: dict[str, list[ReportRow]] = {}
        fees: dict[str, list[Decimal]] = {}
        debited: dict[str, list[Decimal]] = {}
        for r in self.rows:
            if r.has_amount:
                by_currency.setdefault(r.currency, []).append(r)
            if r.outcome in SUBMITTED_OUTCOMES:
                if r.fee is not None:
                    fees.setdefault(r.fee_currency_or_default, []).append(r.fee)
                if r.total_debited is not None:
                    debited.setdefault(r.debit_currency, []).append(r.total_debited)
        currencies = sorted(set(by_currency) | set(fees) | set(debited) | set(declared))
        out: dict[str, CurrencyTotals] = {}
        for cur in currencies:
            rows = by_currency.get(cur, [])
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
                fees=_exact_sum(fees.get(cur, [])),
                total_debited=_exact_sum(debited.get(cur, [])),
                declared=declared.get(cur),
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


def _tally(rows: Iterable[ReportRow]) -> Tally:
    amounts = [r.amount for r in rows if r.amount is not None]
    return Tally(len(amounts), _exact_sum(amounts))


def _amount_scale(amount: Decimal, currency: str) -> int:
    """Decimals to show: the currency's, or more when the amount has more (never round)."""
    if fits_scale(amount, currency):
        return currency_scale(currency)
    exponent = amount.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return -exponent


def _amount_text(amount: Decimal, currency: str) -> str:
    """Plain decimal string at the currency's scale; more digits rather than rounding."""
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


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _safe_text(value: str) -> str:
    """Neutralise text a spreadsheet would run as a formula: prefix it with ``'``."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


# --------------------------------------------------------------------------------------
# Columns shared by the CSV and the XLSX "Rows" sheet

_TEXT, _INT, _MONEY, _RATE = "text", "int", "money", "rate"


@dataclass(frozen=True, slots=True)
class _Column:
    header: str
    kind: str
    get: Callable[[ReportRow], Any]
    currency: Callable[[ReportRow], str] = lambda r: r.currency


def _text_col(header: str, name: str) -> _Column:
    return _Column(header, _TEXT, lambda r: getattr(r, name) or "")


_COLUMNS: tuple[_Column, ...] = (
    _Column("Row", _INT, lambda r: r.row),
    _text_col("Reference", "reference"),
    _text_col("Outcome", "outcome"),
    _Column("Needs attention", _TEXT, lambda r: "yes" if r.needs_attention else ""),
    _text_col("Beneficiary ref", "beneficiary_ref"),
    _text_col("Beneficiary name", "beneficiary_name"),
    _Column("Amount", _MONEY, lambda r: r.amount),
    _text_col("Currency", "currency"),
    _text_col("Payout status", "payout_status"),
    _text_col("Error code", "error_code"),
    _text_col("Error message", "error_message"),
    _text_col("Note", "note"),
    _text_col("Related run", "related_run"),
    _Column(
        "Source amount",
        _MONEY,
        lambda r: r.source_amount,
        lambda r: r._currency_of("source_amount"),
    ),
    _text_col("Source currency", "source_currency"),
    _Column("Exchange rate", _RATE, lambda r: r.exchange_rate),
    _Column("Fee", _MONEY, lambda r: r.fee, lambda r: r.fee_currency_or_default),
    _Column(
        "Fee currency", _TEXT, lambda r: r.fee_currency_or_default if r.fee is not None else ""
    ),
    _Column("Total debited", _MONEY, lambda r: r.total_debited, lambda r: r.debit_currency),
    _Column(
        "Debited currency",
        _TEXT,
        lambda r: r.debit_currency if r.total_debited is not None else "",
    ),
    _text_col("Account (masked)", "masked_account"),
    _text_col("Payout ID", "payout_id"),
    _text_col("Beneficiary ID", "beneficiary_id"),
    _text_col("Instrument ID", "instrument_id"),
    _text_col("Request ID", "request_id"),
    _text_col("Idempotency key", "idempotency_key"),
    _Column("Attempt", _INT, lambda r: r.attempt),
)

ROW_HEADERS: tuple[str, ...] = tuple(c.header for c in _COLUMNS)


def _plain_cell(column: _Column, row: ReportRow) -> str:
    """The CSV text of one cell: amounts plain, text neutralised."""
    value = column.get(row)
    if value is None:
        return ""
    if column.kind == _MONEY:
        return _amount_text(value, column.currency(row))
    if column.kind == _RATE:
        return f"{value:f}"
    if column.kind == _INT:
        return str(value)
    return _safe_text(str(value))


_TOTALS_HEADERS = (
    "Currency",
    "Requested rows",
    "Requested amount",
    "Not submitted rows",
    "Not submitted amount",
    "Submitted rows",
    "Submitted amount",
    "Completed rows",
    "Completed amount",
    "Failed or returned rows",
    "Failed or returned amount",
    "Pending rows",
    "Pending amount",
    "Fees",
    "Total debited",
    "Declared rows",
    "Declared amount",
    "Adds up",
    "Matches declared",
)


_NUMERIC_ENDINGS = ("rows", "amount", "Fees", "debited")


def _totals_cells(t: CurrencyTotals) -> list[tuple[str, Any]]:
    """One totals line as (kind, value) pairs in :data:`_TOTALS_HEADERS` order."""
    cells: list[tuple[str, Any]] = [(_TEXT, t.currency)]
    for name in _TALLY_LINES:
        tally: Tally = getattr(t, name)
        cells += [(_INT, tally.count), (_MONEY, tally.amount)]
    cells += [(_MONEY, t.fees), (_MONEY, t.total_debited)]
    if t.declared is None:
        cells += [(_TEXT, ""), (_TEXT, "")]
    else:
        cells += [(_INT, t.declared.count), (_MONEY, t.declared.amount)]
    declared = {None: "", True: "yes", False: "no"}[t.matches_declared]
    cells += [(_TEXT, "yes" if t.adds_up else "no"), (_TEXT, declared)]
    return cells


# --------------------------------------------------------------------------------------
# Writing


@dataclass(frozen=True, slots=True)
class ReportPaths:
    """Where :func:`write_report` put the report's files."""

    csv: Path
    totals_csv: Path
    xlsx: Path
    json: Path

    def __iter__(self) -> Iterator[Path]:
        return iter((self.xlsx, self.csv, self.totals_csv, self.json))


def write_report(report: Report, out_dir: Path, stem: str) -> ReportPaths:
    """Write ``<stem>.csv``, ``<stem>-totals.csv``, ``<stem>.xlsx`` and ``<stem>.json``.

    Each file is written to a temporary name in ``out_dir`` and renamed into place, so a
    reader never sees half a report. ``out_dir`` is created when missing (0700), the files
    are readable by their owner only (0600). A folder that cannot be written raises
    :class:`~batchpay.errors.ReportError`.
    """
    if not stem or Path(stem).name != stem or stem.startswith("."):
        raise ValueError(f"report stem must be a plain file name, not {stem!r}")
    try:
        return _write_all(report, out_dir, stem)
    except OSError as exc:
        raise ReportError(
            f"cannot write the report {stem} in {out_dir} ({_why(exc)})",
            hint="pass --out a folder this user can write; what was paid is in the journal, "
            f"so `batchpay report {stem} --out FOLDER` writes the report again",
        ) from None


def check_out_dir(out_dir: Path) -> None:
    """Refuse, before anything is sent, a report folder that could not be created or written."""
    existing = out_dir
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    problem = ""
    if not existing.is_dir():
        problem = f"{existing} is not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"{existing} is not writable"
    if problem:
        raise ReportError(
            f"cannot write reports in {out_dir}: {problem}; nothing was sent",
            hint="pass --out a folder this user can write",
        )


def _why(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or type(exc).__name__}{where}"


def _write_all(report: Report, out_dir: Path, stem: str) -> ReportPaths:
    make_private_dir(out_dir)
    paths = ReportPaths(
        csv=out_dir / f"{stem}.csv",
        totals_csv=out_dir / f"{stem}-totals.csv",
        xlsx=out_dir / f"{stem}.xlsx",
        json=out_dir / f"{stem}.json",
    )
    totals = report.totals
    _atomic_write(paths.json, lambda tmp: _write_json(report, tmp))
    _atomic_write(paths.csv, lambda tmp: _write_rows_csv(report, tmp))
    _atomic_write(paths.totals_csv, lambda tmp: _write_totals_csv(totals, tmp))
    _atomic_write(paths.xlsx, lambda tmp: _write_xlsx(report, totals, tmp))
    return paths


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    create_private_file(tmp)  # 0600 before any content is written
    try:
        write(tmp)
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_json(report: Report, path: Path) -> None:
    with path.open("w", encoding="utf-8") as fh:
        json.dump(report.to_dict(), fh, ensure_ascii=False, indent=2)
        fh.write("\n")


def _write_rows_csv(report: Report, path: Path) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(ROW_HEADERS)
        for r in report.rows_for_people():
            out.writerow([_plain_cell(c, r) for c in _COLUMNS])


def _write_totals_csv(totals: Mapping[str, CurrencyTotals], path: Path) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(_TOTALS_HEADERS)
        for t in totals.values():
            line = []
            for kind, value in _totals_cells(t):
                if kind == _MONEY:
                    line.append(_amount_text(value, t.currency))
                elif kind == _INT:
                    line.append(str(value))
                else:
                    line.append(_safe_text(value))
            out.writerow(line)


# XLSX ---------------------------------------------------------------------------------

_XLSX_MAX_TEXT = 32767  # Excel's limit for one cell
# A Font without a name falls back to the viewer's default (a serif in LibreOffice), so every
# font names the workbook's default one.
_FONT_NAME = "Calibri"
_HEADER_FONT = Font(name=_FONT_NAME, size=11, bold=True)
_SECTION_FONT = Font(name=_FONT_NAME, bold=True, size=12)
_HEADER_FILL = PatternFill("solid", fgColor="FFD9D9D9")
_HEADER_BORDER = Border(bottom=Side(style="thin", color="FF808080"))
_TITLE_FONT = Font(name=_FONT_NAME, bold=True, size=14)
_BANNER_FONT = Font(name=_FONT_NAME, bold=True, size=14, color="FF9C0006")
_BANNER_FILL = PatternFill("solid", fgColor="FFFFC7CE")
_WARNING_FONT = Font(name=_FONT_NAME, size=11, bold=True, color="FF9C0006")


def _colours(fill: str, text: str) -> tuple[PatternFill, Font]:
    return PatternFill("solid", fgColor=fill), Font(name=_FONT_NAME, size=11, color=text)


# Excel's own "Bad", "Good" and "Neutral" cell colours.
_BAD = _colours("FFFFC7CE", "FF9C0006")
_GOOD = _colours("FFC6EFCE", "FF006100")
_NEUTRAL = _colours("FFFFEB9C", "FF9C5700")


def _number_format(scale: int) -> str:
    return "#,##0" + ("." + "0" * scale if scale > 0 else "")


class _Sheet:
    """Builds styled write-only cells for one sheet."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    def text(self, value: str, **style: Any) -> Any:
        value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", _safe_text(value))[:_XLSX_MAX_TEXT]
        cell = WriteOnlyCell(self.ws, value=value)
        cell.data_type = "s"  # never a formula, whatever the text
        cell.number_format = "@"
        return self._style(cell, style)

    def integer(self, value: int, **style: Any) -> Any:
        cell = WriteOnlyCell(self.ws, value=value)
        cell.number_format = "0"
        return self._style(cell, style)

    def money(self, value: Decimal | None, currency: str, **style: Any) -> Any:
        if value is None:
            return self._style(WriteOnlyCell(self.ws, value=None), style)
        text = _amount_text(value, currency)
        cell = self.number(text)
        cell.number_format = _number_format(_amount_scale(value, currency))
        return self._style(cell, style)

    def rate(self, value: Decimal | None) -> Any:
        if value is None:
            return WriteOnlyCell(self.ws, value=None)
        cell = self.number(f"{value:f}")
        cell.number_format = "General"
        return cell

    def number(self, digits: str) -> Any:
        # openpyxl would write a Decimal through "%.16g" (a float: 9.95 -> 9.949999999999999),
        # so the cell holds the exact decimal digits as its stored value, typed as a number.
        cell = WriteOnlyCell(self.ws, value=digits)
        cell.data_type = "n"
        return cell

    def header(self, value: str, *, numeric: bool = False) -> Any:
        """A bold, wrapped header cell; right-aligned over a column of numbers."""
        horizontal = "right" if numeric else "left"
        return self.text(
            value,
            font=_HEADER_FONT,
            fill=_HEADER_FILL,
            border=_HEADER_BORDER,
            alignment=Alignment(wrap_text=True, vertical="top", horizontal=horizontal),
        )

    @staticmethod
    def _style(cell: Any, style: Mapping[str, Any]) -> Any:
        for name, value in style.items():
            setattr(cell, name, value)
        return cell


def _outcome_style(outcome: str) -> dict[str, Any]:
    if outcome in ATTENTION_OUTCOMES:
        fill, font = _BAD
    elif outcome in COMPLETED_OUTCOMES:
        fill, font = _GOOD
    elif outcome in PENDING_OUTCOMES:
        fill, font = _NEUTRAL
    else:
        return {}
    return {"fill": fill, "font": font}


def _width(values: Iterable[int], header: str) -> int:
    longest = max(values, default=0)
    # Headers wrap onto two lines, between words; bold text is about 15% wider.
    header_need = max(max(len(w) for w in header.split()), (len(header) + 1) // 2)
    return min(max(longest, header_need * 115 // 100 + 1, 6) + 2, 60)


def _write_xlsx(report: Report, totals: Mapping[str, CurrencyTotals], path: Path) -> None:
    wb = Workbook(write_only=True)
    _summary_sheet(wb.create_sheet("Summary"), report, totals)
    _rows_sheet(wb.create_sheet("Rows"), report)
    wb.save(path)


def _rows_sheet(ws: Any, report: Report) -> None:
    rows = report.rows_for_people()
    cells = [[_plain_cell(c, r) for c in _COLUMNS] for r in rows]
    for index, column in enumerate(_COLUMNS, start=1):
        lengths = (len(line[index - 1]) for line in cells)
        if column.kind == _MONEY:  # thousands separators
            lengths = (n + n // 3 for n in lengths)
        ws.column_dimensions[get_column_letter(index)].width = _width(lengths, column.header)
    last = get_column_letter(len(_COLUMNS))
    ws.freeze_panes = "C2"  # header row, and Row + Reference stay in view
    ws.auto_filter.ref = f"A1:{last}{len(rows) + 1}"
    ws.print_title_rows = "1:1"  # printed pages repeat the header, Row and Reference
    ws.print_title_cols = "A:B"
    ws.page_setup.orientation = "landscape"
    ws.row_dimensions[1].height = 30.0  # two lines of wrapped header

    sheet = _Sheet(ws)
    ws.append([sheet.header(c.header, numeric=c.kind != _TEXT) for c in _COLUMNS])
    for r in rows:
        line: list[Any] = []
        for column in _COLUMNS:
            value = column.get(r)
            if value is None or value == "":
                line.append(None)  # no cell at all: smaller and faster than an empty one
            elif column.kind == _MONEY:
                line.append(sheet.money(value, column.currency(r)))
            elif column.kind == _RATE:
                line.append(sheet.rate(value))
            elif column.kind == _INT:
                line.append(sheet.integer(value))
            elif column.header in ("Outcome", "Needs attention"):
                line.append(sheet.text(value, **_outcome_style(r.outcome)))
            else:
                line.append(sheet.text(value))
        ws.append(line)


def _summary_sheet(ws: Any, report: Report, totals: Mapping[str, CurrencyTotals]) -> None:
    sheet = _Sheet(ws)
    ws.column_dimensions["A"].width = 30.0
    for index in range(2, len(_TOTALS_HEADERS) + 1):
        ws.column_dimensions[get_column_letter(index)].width = 14.0
    _print_landscape_fit_width(ws)
    written = 0

    def add(cells: list[Any], *, height: float | None = None) -> None:
        nonlocal written
        written += 1
        if height is not None:
            ws.row_dimensions[written].height = height
        ws.append(cells)

    add([sheet.text("batchpay reconciliation report", font=_TITLE_FONT)])
    if report.is_sandbox:
        banner = sheet.text(SANDBOX_BANNER, font=_BANNER_FONT, fill=_BANNER_FILL)
        add([banner] + [sheet.text("", fill=_BANNER_FILL) for _ in range(3)], height=22.0)
    add([])
    problems = report.check_totals(totals)
    bold = {"font": _HEADER_FONT}
    left = {"alignment": Alignment(horizontal="left")}
    facts: list[tuple[str, Any]] = [
        ("Run ID", sheet.text(report.run_id)),
        ("File", sheet.text(report.file_name)),
        ("File SHA-256", sheet.text(report.file_sha256)),
        (
            "Environment",
            sheet.text(
                "sandbox — no money moved" if report.is_sandbox else "live",
                **({"font": _WARNING_FONT} if report.is_sandbox else {}),
            ),
        ),
        ("API URL", sheet.text(report.api_url)),
        ("Generated at (UTC)", sheet.text(_iso_utc(report.generated_at))),
        ("Rows in file", sheet.integer(len(report.rows), **left)),
        (
            "Rows needing attention",
            sheet.integer(report.attention_count, **left, **_count_style(report.attention_count)),
        ),
        ("Rows without a readable amount", sheet.integer(report.rows_without_amount, **left)),
        (
            "Control totals check",
            sheet.text("FAILED" if problems else "passed", **_yes_no_style(not problems)),
        ),
    ]
    for label, cell in facts:
        add([sheet.text(label, **bold), cell])
    for problem in problems:
        add([sheet.text(""), sheet.text(problem, font=_BAD[1])])

    add([])
    add([sheet.text("Control totals per currency", font=_SECTION_FONT)])
    headers = [sheet.header(h, numeric=h.endswith(_NUMERIC_ENDINGS)) for h in _TOTALS_HEADERS]
    add(headers, height=45.0)  # up to three lines of wrapped header
    for t in totals.values():
        line = []
        for kind, value in _totals_cells(t):
            if kind == _MONEY:
                line.append(sheet.money(value, t.currency))
            elif kind == _INT:
                line.append(sheet.integer(value))
            elif value in ("yes", "no"):
                line.append(sheet.text(value, **_yes_no_style(value == "yes")))
            else:
                line.append(sheet.text(value))
        add(line)
    if not totals:
        add([sheet.text("(no amounts)")])

    add([])
    add([sheet.text("Rows by outcome", font=_SECTION_FONT)])
    add([sheet.header("Outcome"), sheet.header("Rows", numeric=True), sheet.header("Meaning")])
    for outcome, count in report.outcome_counts.items():
        style = _outcome_style(outcome) if count else {}
        meaning = OUTCOME_MEANINGS[Outcome(outcome)]
        add([sheet.text(outcome, **style), sheet.integer(count), sheet.text(meaning)])


def _print_landscape_fit_width(ws: Any) -> None:
    ws.page_setup.orientation = "landscape"
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0  # as many pages tall as needed


def _yes_no_style(good: bool) -> dict[str, Any]:
    fill, font = _GOOD if good else _BAD
    return {"fill": fill, "font": font}


def _count_style(attention: int) -> dict[str, Any]:
    return {"fill": _BAD[0], "font": _BAD[1]} if attention else {}


# --------------------------------------------------------------------------------------
# Terminal summary


def _human_amount(amount: Decimal, currency: str) -> str:
    scale = _amount_scale(amount, currency)
    return f"{amount.quantize(Decimal(1).scaleb(-scale)):,f}"


def summary_lines(report: Report, paths: ReportPaths | None = None) -> list[str]:
    """A short summary for the terminal: outcomes, totals per currency, where the files are."""
    lines: list[str] = []
    if report.is_sandbox:
        lines.append(SANDBOX_BANNER)
    lines.append(f"Run {report.run_id}: {report.file_name}, {len(report.rows)} rows")
    counts = [f"{o} {n}" for o, n in report.outcome_counts.items() if n]
    lines.append("Outcomes: " + (", ".join(counts) if counts else "no rows"))
    totals = report.totals
    for cur, t in totals.items():
        if t.requested.count == 0:
            continue
        parts = [
            f"{label} {part.count} / {_human_amount(part.amount, cur)}"
            for label, part in (
                ("not submitted", t.not_submitted),
                ("completed", t.completed),
                ("failed or returned", t.failed_or_returned),
                ("pending", t.pending),
            )
            if part.count
        ]
        requested = f"{t.requested.count} / {_human_amount(t.requested.amount, cur)}"
        lines.append(f"{cur} (rows / amount): requested {requested} = " + " + ".join(parts))
    charges = [
        ("Fees", {c: t.fees for c, t in totals.items() if t.fees}),
        ("Total debited", {c: t.total_debited for c, t in totals.items() if t.total_debited}),
    ]
    for label, amounts in charges:
        if amounts:
            shown = ", ".join(f"{c} {_human_amount(a, c)}" for c, a in amounts.items())
            lines.append(f"{label}: {shown}")
    attention = [r.row for r in report.rows_for_people() if r.needs_attention]
    if attention:
        listed = ", ".join(str(n) for n in attention[:10])
        more = f" and {len(attention) - 10} more" if len(attention) > 10 else ""
        lines.append(
            f"{len(attention)} rows need a person: rows {listed}{more} (listed first in the report)"
        )
    for problem in report.check_totals(totals):
        lines.append(f"CONTROL TOTALS PROBLEM: {problem}")
    if paths is not None:
        lines.append(f"Report: {paths.xlsx}")
        lines.append(f"        {paths.csv}, {paths.totals_csv}, {paths.json}")
    return lines

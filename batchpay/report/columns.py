"""The columns of the CSV files and the XLSX sheets, and the text of their cells.

Every text cell is neutralised against formula injection (:func:`_safe_text`); amounts are
never text and are not touched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batchpay.report.model import _TALLY_LINES, CurrencyTotals, ReportRow, Tally, _amount_text

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _safe_text(value: str) -> str:
    """Neutralise text a spreadsheet would run as a formula: prefix it with ``'``."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


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
    "Refunded",
    "Declared rows",
    "Declared amount",
    "Adds up",
    "Matches declared",
)


_NUMERIC_ENDINGS = ("rows", "amount", "Fees", "debited", "Refunded")


def _totals_cells(t: CurrencyTotals) -> list[tuple[str, Any]]:
    """One totals line as (kind, value) pairs in :data:`_TOTALS_HEADERS` order."""
    cells: list[tuple[str, Any]] = [(_TEXT, t.currency)]
    for name in _TALLY_LINES:
        tally: Tally = getattr(t, name)
        cells += [(_INT, tally.count), (_MONEY, tally.amount)]
    cells += [(_MONEY, t.fees), (_MONEY, t.total_debited), (_MONEY, t.refunded)]
    if t.declared is None:
        cells += [(_TEXT, ""), (_TEXT, "")]
    else:
        cells += [(_INT, t.declared.count), (_MONEY, t.declared.amount)]
    declared = {None: "", True: "yes", False: "no"}[t.matches_declared]
    cells += [(_TEXT, "yes" if t.adds_up else "no"), (_TEXT, declared)]
    return cells

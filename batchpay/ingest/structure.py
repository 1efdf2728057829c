"""The file's structure around its payout rows: title rows above the header, totals below.

Both work on what the readers produce (a :class:`~batchpay.ingest.canonical.Table` of cell
texts, then the canonical frame), so CSV and XLSX behave alike:

- The header row is the first of the first :data:`HEADER_SEARCH_ROWS` rows whose cells name
  every always-required column (by the layout's aliases), however many cells the rows above
  it fill. Rows above it are a *title* (an export's name, a period, a company — in a CSV
  also a line without the separators, :func:`pad_title_lines`): skipped when the layout says
  ``skip_title_rows = true`` under ``[file]``, else the file is refused naming the row where
  the header was found.
  In XLSX a header row taken from a title block (it names too few columns) gives way to a
  later one of the first rows that names them all.
- Trailing rows labelled as totals (``TOTAL``, ``Grand total``, ``Totals``, ``Summe``,
  ``Gesamt``, ``Total général``, ``Totaal``) that hold no payee are *totals rows*: never
  paid, reported as such, and with ``check_total_row = true`` their amount is checked
  against the rows above (per currency when they name one).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

import polars as pl

from batchpay import money
from batchpay.errors import InputError, RowIssue
from batchpay.layout import Layout

__all__ = [
    "HEADER_SEARCH_ROWS",
    "TotalRow",
    "check_totals_rows",
    "names_header",
    "pad_title_lines",
    "split_totals_rows",
]

HEADER_SEARCH_ROWS = 10
ROW = "_row"
_TOTAL_LABEL = re.compile(
    r"^(grand\s+|sub\s*)?totals?\b|^(summe|gesamt(summe)?|total\s+g[ée]n[ée]ral|totaal)\b",
    re.IGNORECASE,
)
# A totals row holds no payee: these are blank in it.
_PAYEE_COLUMNS = ("beneficiary_ref", "payment_method", "iban", "account_number")


@dataclass(frozen=True, slots=True)
class TotalRow:
    """A trailing totals row: where it is, its label, and the amount and currency it shows."""

    row: int
    label: str
    amount: str
    currency: str


def recognised(cells: list[str], layout: Layout) -> set[str]:
    """The canonical columns these header cells name."""
    return {c for text in cells if text.strip() and (c := layout.match_header(text.strip()))}


def names_header(cells: Iterable[str], layout: Layout) -> bool:
    """Whether these cells name every always-required column: only such a row is a header."""
    return set(layout.always_required) <= recognised(list(cells), layout)


def pad_title_lines(data: bytes, sep: str, layout: Layout) -> bytes:
    """CSV bytes whose lines above the header (found by its aliases within the first
    :data:`HEADER_SEARCH_ROWS` lines) that have fewer fields than it, such as a title typed
    without separators, end in separators up to the header's width, so they are read, told
    apart and reported as title rows, as in an XLSX file. Nothing else changes (rows keep
    their numbers); a file with its header on line 1, or with no header among the first
    lines, is returned as it is."""
    lines = data[:65536].split(b"\n")[:-1][:HEADER_SEARCH_ROWS]

    def fields(line: bytes) -> list[str] | None:
        text = line.decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r")
        try:
            return next(csv.reader([text], delimiter=sep), [])
        except csv.Error:
            return None

    first = fields(lines[0]) if lines else None
    if first is None or names_header(first, layout):
        return data
    for at, line in enumerate(lines[1:], start=1):
        cells = fields(line)
        if cells is None or not names_header(cells, layout):
            continue
        padded = []
        for above in lines[:at]:
            have = fields(above)
            short = have is not None and 0 < len(have) < len(cells) and above.count(b'"') == 0
            if short and above.strip(b"\r\t \xef\xbb\xbf"):
                cr = b"\r" if above.endswith(b"\r") else b""
                extra = sep.encode("utf-8") * (len(cells) - len(have or []))
                above = above.removesuffix(b"\r") + extra + cr
            padded.append(above)
        start = sum(len(x) + 1 for x in lines[:at])
        return b"\n".join(padded) + b"\n" + data[start:]
    return data


def locate_header(
    header: list[str], frame: pl.DataFrame, layout: Layout
) -> tuple[int, list[str], list[tuple[int, str]]] | None:
    """(header row, its cells, title rows above it as (row, text)) when the header is not
    the first row but one of the next rows; None when the first row is the header (or no
    row looks like one: the usual "missing columns" refusal follows)."""
    required = set(layout.always_required)
    if required <= recognised(header, layout):
        return None
    cells_of = [c for c in frame.columns if c != ROW]
    for values in frame.head(HEADER_SEARCH_ROWS - 1).iter_rows(named=True):
        cells = [str(values[c] or "") for c in cells_of]
        if required <= recognised(cells, layout):
            found = int(values[ROW])
            above = [(1, _text(header))] + [
                (int(v[ROW]), _text([str(v[c] or "") for c in cells_of]))
                for v in frame.filter(pl.col(ROW) < found).iter_rows(named=True)
            ]
            return found, cells, [(r, t) for r, t in above if t]
    return None


def _text(cells: list[str]) -> str:
    return " ".join(c.strip() for c in cells if c.strip())


def refuse_title(header_row: int, titles: list[tuple[int, str]]) -> InputError:
    """The refusal of a file whose header is below title rows the layout does not skip."""
    rows = ", ".join(str(r) for r, _ in titles)
    shown = titles[0][1] if len(titles[0][1]) <= 60 else titles[0][1][:57] + "…"
    return InputError(
        f"the header row is row {header_row}, not row 1: row(s) {rows} above it look like a "
        f"title ({shown!r})",
        code="title_rows",
        row=header_row,
        hint="delete the rows above the header row, or set skip_title_rows = true under "
        "[file] in your layout",
    )


def split_totals_rows(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[TotalRow]]:
    """The canonical frame without its trailing totals rows, and those rows."""
    found: list[TotalRow] = []
    data = [c for c in frame.columns if c != ROW]
    while frame.height > 1:
        last = frame.row(frame.height - 1, named=True)
        texts = [str(last[c] or "").strip() for c in data]
        label = next((t for t in texts if t), "")
        payee = any(str(last.get(c) or "").strip() for c in _PAYEE_COLUMNS if c in last)
        if payee or not _TOTAL_LABEL.match(label):
            break
        found.append(
            TotalRow(
                row=int(last[ROW]),
                label=label,
                amount=str(last.get("amount") or "").strip(),
                currency=str(last.get("currency") or "").strip().upper(),
            )
        )
        frame = frame.slice(0, frame.height - 1)
    return frame, found[::-1]


def check_totals_rows(
    frame: pl.DataFrame, totals: list[TotalRow], amount_label: str
) -> list[RowIssue]:
    """Each totals row's amount against the sum of the rows (of its currency, when it names
    one; a file of several currencies needs it to). Unreadable amounts are left out of the
    sum and said."""
    issues: list[RowIssue] = []
    for t in totals:
        rows = (
            frame
            if not t.currency
            else frame.filter(pl.col("currency").str.to_uppercase() == t.currency)
        )
        currencies = set(rows["currency"].str.to_uppercase().unique().to_list())
        if not t.currency and len(currencies) > 1:
            issues.append(
                RowIssue(
                    t.row,
                    amount_label,
                    "total_row",
                    f"the totals row ({t.label!r}) names no currency, and the rows are in "
                    f"{', '.join(sorted(currencies))}: it cannot be checked",
                )
            )
            continue
        try:
            stated = money.parse_amount(t.amount)
        except ValueError:
            issues.append(
                RowIssue(
                    t.row,
                    amount_label,
                    "total_row",
                    f"the totals row's amount {t.amount!r} is not an amount",
                )
            )
            continue
        total, unreadable = Decimal(0), 0
        for text in rows["amount"].to_list():
            try:
                total += money.parse_amount(str(text))
            except ValueError:
                unreadable += 1
        if total != stated:
            also = f" ({unreadable} unreadable amount(s) left out)" if unreadable else ""
            issues.append(
                RowIssue(
                    t.row,
                    amount_label,
                    "total_row_mismatch",
                    f"the totals row ({t.label!r}) says {stated} but the {rows.height} row(s) "
                    f"above sum to {total}{also}",
                )
            )
    return issues

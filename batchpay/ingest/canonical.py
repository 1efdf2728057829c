"""A reader's raw table mapped to the layout's canonical columns, its cells checked.

Both readers (:mod:`batchpay.ingest.csv`, :mod:`batchpay.ingest.xlsx`) produce a :class:`Table`
of positional string columns; here header texts become canonical names through the layout's
aliases, required columns are checked, blank rows dropped, and cells are checked for what a
reader cannot see alone: formula-like text, scientific notation, invisible characters,
over-long values and floating-point artefacts in amounts.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

import polars as pl

from batchpay import money
from batchpay.errors import InputError, RowIssue
from batchpay.ingest import structure
from batchpay.layout import Layout
from batchpay.normalise import CHANGES, clean_cells

__all__ = [
    "ROW",
    "SCIENTIFIC",
    "Canonical",
    "Lengths",
    "Table",
    "column_letter",
    "to_canonical",
    "too_many_rows",
]

ROW = "_row"
SCIENTIFIC = r"^[0-9]+(\.[0-9]+)?[eE][+-]?[0-9]+$"
_FORMULA_START = r"^[=+\-@]"
_FORMULA_KINDS = frozenset({"text", "identifier"})
# Invisible format characters (BOM, zero-width, bidi controls): in a reference or bank detail
# they make two cells that look the same differ, e.g. a second payout under a reference that
# looks already paid. Free text may legitimately hold some of them (ZWNJ in Persian names).
# Characters that show as nothing (or as a blank) yet make text differ: every format
# character (Unicode category Cf: soft hyphen, zero-width and direction marks, the BOM,
# tags …), line and paragraph separators, and the blank letters and marks outside Cf
# (combining grapheme joiner, Hangul fillers, Khmer and Mongolian invisibles, variation
# selectors, the blank Braille pattern).
_BLANK_CHARS = (
    "\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2800\u3164\uffa0"
    "\ufe00-\ufe0f\U000e0100-\U000e01ef"
)
_INVISIBLE = r"[\p{Cf}\p{Zl}\p{Zp}" + _BLANK_CHARS + "]"  # polars (Rust) regex
_INVISIBLE_PY = re.compile("[" + _BLANK_CHARS + "]")
_NON_ASCII = r"[^\x00-\x7F]"


def _first_invisible(value: str) -> str | None:
    for char in value:
        if unicodedata.category(char) in ("Cf", "Zl", "Zp") or _INVISIBLE_PY.match(char):
            return char
    return None


@dataclass
class Table:
    """Header texts + positional string columns ``c0..cN`` + ``_row``, before canonical mapping."""

    header: list[str]
    frame: pl.DataFrame
    issues: list[RowIssue] = field(default_factory=list)
    # (row, column index) of cells already reported by the reader (no second report)
    flagged: set[tuple[int, int]] = field(default_factory=set)
    # XLSX numeric amount cells: checked for floating-point artefacts once the currency is known
    numeric_amounts: dict[int, str] = field(default_factory=dict)
    blank_rows: int = 0  # rows already dropped by the reader
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    other_sheets: list[str] = field(default_factory=list)
    header_row: int = 1  # where the header was found (rows above it: title_rows)
    title_rows: list[tuple[int, str]] = field(default_factory=list)


def column_letter(index: int) -> str:
    """Excel's letters for the column at 0-based ``index`` (0 is ``A``)."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def too_many_rows(limit: int) -> InputError:
    """The error for a file with more than ``limit`` data rows."""
    return InputError(
        f"the file has more than {limit:,} data rows (limits.max_rows)",
        code="too_many_rows",
        hint="split the file, or raise limits.max_rows in the layout",
    )


Lengths = dict[str, tuple[int, int]]


class Canonical(NamedTuple):
    """A table in the layout's canonical columns, and what was found on the way."""

    frame: pl.DataFrame
    header_map: dict[str, str]
    unknown: list[str]
    blank_rows: int
    issues: list[RowIssue]
    # columns no cell of which validation's normalisation would change (see
    # batchpay.normalise; a column absent from the file is all blank, so among them)
    normal: frozenset[str]
    # shortest and longest cell (bytes) of the columns left as read, which rows dropped
    # later cannot widen
    lengths: Lengths
    # columns every cell of which is clean (batchpay.normalise.CLEAN)
    clean: frozenset[str]


def to_canonical(table: Table, layout: Layout) -> Canonical:
    """The canonical frame and what was found on the way (:class:`Canonical`)."""
    located = structure.locate_header(table.header, table.frame, layout)
    if located is not None:  # the header is below a title: see batchpay.ingest.structure
        table.header_row, table.header, table.title_rows = located
        table.frame = table.frame.filter(pl.col(ROW) > table.header_row)
    if (
        table.title_rows
        and not layout.file.skip_title_rows
        and set(layout.always_required) <= structure.recognised(table.header, layout)
    ):
        raise structure.refuse_title(table.header_row, table.title_rows)
    header = [h.strip() for h in table.header]
    header_map: dict[str, str] = {}
    positions: dict[str, int] = {}
    unknown: list[str] = []
    for i, text in enumerate(header):
        canonical = layout.match_header(text) if text else None
        if canonical is None:
            if text:
                unknown.append(text)
            continue
        if canonical in positions:
            first = header_map[canonical]
            raise InputError(
                f"columns {first!r} and {text!r} both mean {canonical}",
                code="duplicate_header",
                row=table.header_row,
                column=text,
                hint="delete or rename one of them (header aliases are listed in the layout)",
            )
        header_map[canonical] = text
        positions[canonical] = i
    missing = [c for c in layout.always_required if c not in positions]
    if missing:
        where = f" in sheet {table.sheet!r}" if table.sheet is not None else ""
        found = f"; columns not recognised: {_listed(unknown)}" if unknown else ""
        hint = "add the column(s), or add your header text to their aliases in the layout"
        if table.other_sheets:
            hint = (
                f"the workbook's other sheets are {_listed(table.other_sheets)}: if the payouts "
                "are on one of them, unhide it and move it first, or name it in the layout "
                "(file.sheet); else " + hint
            )
        raise InputError(
            f"missing required column(s){where}: {', '.join(missing)}{found}",
            code="missing_columns",
            row=table.header_row,
            column=missing[0],
            hint=hint,
        )
    frame, hits, filled, normal, lengths, clean = _scan_cells(table.frame, positions, layout)
    data_columns = [c for c in frame.columns if c != ROW]
    blank = pl.sum_horizontal([pl.col(c).str.len_bytes() for c in data_columns]) == 0
    # a column with no empty cell means no blank row: no need to add every row up
    blank_rows = 0 if filled else int(frame.lazy().select(blank.sum()).collect().item())
    if blank_rows:
        frame = frame.filter(~blank)
    blank_rows += table.blank_rows
    if frame.is_empty():
        raise InputError(
            "the file has a header row but no payout rows",
            code="no_rows",
            row=2,
            hint="export the sheet again with its rows",
        )
    if frame.height > layout.limits.max_rows:
        raise too_many_rows(layout.limits.max_rows)
    label = {c: header_map[c] for c in positions}
    issues = list(table.issues)
    for name, code, row, value in hits:
        if (row, positions[name]) not in table.flagged:
            message = _cell_message(code, value, layout.limits.max_cell_chars)
            if message is not None:
                issues.append(RowIssue(row, label[name], code, message))
    nameless = [i for i, text in enumerate(header) if not text]
    if nameless:
        has_data = frame.select([(pl.col(f"c{i}") != "").any() for i in nameless]).row(0)
        unknown.extend(
            f"(column {column_letter(i)} without a header)"
            for i, flag in zip(nameless, has_data, strict=True)
            if flag
        )
    selected = [
        pl.col(f"c{positions[name]}").alias(name)
        if name in positions
        else pl.lit("", dtype=pl.String).alias(name)
        for name in layout.names
    ]
    out = frame.select([*selected, pl.col(ROW)])
    number = layout.file.number_format
    if number.declared and "amount" in positions:
        already = {r for r, c in table.flagged if c == positions["amount"]}
        already |= {i.row for i in issues if i.column == label["amount"]}
        out, declared = _declared_amounts(out, number, set(table.numeric_amounts), already)
        lengths.pop("amount", None)  # rewritten: its lengths are not the scan's
        issues.extend(RowIssue(row, label["amount"], "amount", msg) for row, msg in declared)
    if table.numeric_amounts:
        issues.extend(_float_artefacts(out, table.numeric_amounts, label.get("amount", "amount")))
    normal |= CHANGES.keys() - positions.keys()
    lengths.update({name: (0, 0) for name in layout.names if name not in positions})
    return Canonical(out, header_map, unknown, blank_rows, issues, normal, lengths, clean)


def _declared_amounts(
    frame: pl.DataFrame, number: money.NumberFormat, numeric_rows: set[int], reported: set[int]
) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
    """Amounts written in the layout's declared format rewritten as plain decimal text.

    String work only, so the digits are exact. XLSX number cells are numbers already and stay
    as they are; a text amount not written as declared stays as it is and is reported, naming
    what it holds (``1250.50`` in a decimal-comma file is ambiguous: it is not guessed).
    """
    amount = pl.col("amount")
    groups = amount.str.extract_groups(number.pattern())
    whole = groups.struct.field("1").str.replace_all(r"[^0-9]", "")
    fraction = groups.struct.field("2")
    plain = pl.when(fraction.is_null()).then(whole).otherwise(whole + "." + fraction)
    as_is = pl.col(ROW).is_in(sorted(numeric_rows)) | (amount == "")
    out = frame.with_columns(
        pl.when(as_is | whole.is_null()).then(amount).otherwise(plain).alias("amount")
    )
    bad = frame.filter(~as_is & whole.is_null()).select(ROW, "amount", "currency")
    problems = [
        (int(row), money.amount_problem(str(value), str(currency), number) or "is not an amount")
        for row, value, currency in bad.iter_rows()
        if int(row) not in reported
    ]
    return out, problems


def _listed(texts: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(t) for t in texts[:limit])
    return shown + (f" and {len(texts) - limit} more" if len(texts) > limit else "")


def _scan_cells(
    frame: pl.DataFrame, positions: Mapping[str, int], layout: Layout
) -> tuple[
    pl.DataFrame, list[tuple[str, str, int, str]], bool, frozenset[str], Lengths, frozenset[str]
]:
    """Trim whitespace and find formula-like, scientific-notation and over-long cells.

    One parallel pass flags the columns that need a closer look, so a clean file pays for a
    single scan. Returns the trimmed frame, (column, code, row, value) hits, whether some
    column has no empty cell (then no row is blank), the canonical columns with no cell
    validation's normalisation would change (the scan looked for one too), the shortest and
    longest cell of each canonical column left as read, and the canonical columns every cell
    of which is clean (:func:`batchpay.normalise.clean_cells`: asked instead of the look).
    """
    kinds = {f"c{i}": layout.column(name).kind for name, i in positions.items()}
    names = {f"c{i}": name for name, i in positions.items()}
    columns = [c for c in frame.columns if c != ROW]
    max_bytes = layout.limits.max_cell_chars
    looks: dict[str, pl.Expr] = {}
    probes: list[pl.Expr] = []
    rewritten: set[str] = set()  # clean cells a normalisation may still rewrite
    for c in columns:
        # formulas matter in free text; coded columns fail validation with a clearer message
        start = r"^[\s=+\-@]" if kinds.get(c) in _FORMULA_KINDS else r"^\s"
        look = start + r"|\s$"
        if kinds.get(c, "text") != "text":
            # invisible characters are all non-ASCII: the same scan looks for any (a column
            # it flags is looked at closely for each; the flag costs no second pass)
            look += "|" + _NON_ASCII
        if kinds.get(c) == "digits":
            # scientific notation (1.2E+15): a cell that is so once trimmed either has edge
            # whitespace (looked for above) or is so as it stands; an IBAN's letters are not
            look += "|" + SCIENTIFIC
        if names.get(c) in CHANGES:
            # and for a cell validation's normalisation would change (batchpay.normalise)
            look += "|" + CHANGES[names[c]]
        looks[c] = pl.col(c).str.contains(look).any().alias(f"look {c}")
        clean = clean_cells(names[c], layout, pl.col(c)) if c in names else None
        # a column whose cells are usually all clean (batchpay.normalise.clean_cells) is asked
        # that instead: then it has nothing to look at, and its format or value rules pass
        probes.append(looks[c] if clean is None else clean[0].all().alias(c))
        if clean is not None and not clean[1]:
            rewritten.add(c)
        size = pl.col(c).str.len_bytes()
        probes.append(size.max().alias(f"longest {c}"))
        probes.append(size.min().alias(f"shortest {c}"))
    # lazily: polars' engine splits the rows across its threads, an eager select does not
    flags = frame.lazy().select(probes).collect().row(0, named=True) if columns else {}
    clean_columns = {c for c in columns if flags.get(c) is True}
    unclean = [looks[c] for c in columns if flags.get(c) is False]
    if unclean:  # not all clean: looked at as any other column
        flags.update(frame.lazy().select(unclean).collect().row(0, named=True))
    flags.update({f"look {c}": False for c in clean_columns})
    # a column the look flags (edge whitespace, or anything else looked for) is trimmed and
    # then checked closely for each thing; trimming a column with no edge changes nothing
    to_trim = [c for c in columns if flags[f"look {c}"]]
    # no rows, no lengths: then nothing is long, and no column is known filled
    shortest = {c: flags[f"shortest {c}"] for c in columns}
    longest = {c: flags[f"longest {c}"] for c in columns}
    # trimming may empty a cell: only an untrimmed column's own count says it has none
    filled = any((shortest[c] or 0) > 0 for c in columns if c not in to_trim)
    # a clean column may still be one normalisation rewrites (12-34-56 as 123456)
    rewritten &= clean_columns
    normal = frozenset(
        names[c] for c in columns if c in names and c not in to_trim and c not in rewritten
    )
    lengths = {
        names[c]: (int(shortest[c]), int(longest[c]))
        for c in columns
        if c in names and c not in to_trim and c not in rewritten and shortest[c] is not None
    }
    clean_names = frozenset(names[c] for c in clean_columns)
    if to_trim:
        frame = frame.with_columns([pl.col(c).str.strip_chars() for c in to_trim])
    checks: list[tuple[str, str, pl.Expr]] = []
    for c in columns:
        if c not in names:
            continue
        if flags[f"look {c}"] and kinds[c] in _FORMULA_KINDS:
            checks.append((c, "formula_like", pl.col(c).str.contains(_FORMULA_START)))
        if (longest[c] or 0) > max_bytes:
            checks.append((c, "too_long", pl.col(c).str.len_bytes() > max_bytes))
        if flags[f"look {c}"] and kinds[c] == "digits":
            checks.append((c, "scientific_notation", pl.col(c).str.contains(SCIENTIFIC)))
        if flags[f"look {c}"] and kinds[c] != "text":
            checks.append((c, "invisible_character", pl.col(c).str.contains(_INVISIBLE)))
    hits: list[tuple[str, str, int, str]] = []
    for c, code, expr in checks:
        for row, value in frame.filter(expr).select(ROW, c).iter_rows():
            hits.append((names[c], code, int(row), str(value)))
    return frame, hits, filled, normal & CHANGES.keys(), lengths, clean_names


def _cell_message(code: str, value: str, max_chars: int) -> str | None:
    if code == "formula_like":
        return (
            f"starts with {value[0]!r} like a spreadsheet formula; remove it "
            "(it could run as a formula when the file is opened in Excel)"
        )
    if code == "invisible_character":
        char = _first_invisible(value) or "\ufeff"
        name = "BYTE ORDER MARK" if char == "\ufeff" else unicodedata.name(char, "FORMAT CHAR")
        return (
            f"contains an invisible character (U+{ord(char):04X} {name}), so it differs from the "
            "same text typed normally; delete the cell's content and type it again"
        )
    if code == "scientific_notation":
        return (
            f"is in scientific notation ({value}): Excel turned the number into an estimate "
            "and the real digits are lost — format the column as Text and type the values again"
        )
    if len(value) <= max_chars:
        return None
    return f"is {len(value)} characters long; a cell may hold at most {max_chars}"


def _float_artefacts(frame: pl.DataFrame, amounts: Mapping[int, str], label: str) -> list[RowIssue]:
    """Numeric amount cells whose stored value is a float artefact of a rounder amount."""
    rows = pl.Series(list(amounts), dtype=pl.Int64)
    currencies = dict(
        frame.filter(pl.col(ROW).is_in(rows.implode())).select(ROW, "currency").iter_rows()
    )
    issues = []
    for row, text in amounts.items():
        intended = _float_artefact_of(text, str(currencies.get(row, "")))
        if intended is not None:
            issues.append(
                RowIssue(
                    row,
                    label,
                    "float_artefact",
                    f"is stored as {text}, which looks like a floating-point artefact of "
                    f"{intended}; type {intended} (or round the formula with ROUND) and save again",
                )
            )
    return issues


def _float_artefact_of(text: str, currency: str) -> str | None:
    """The amount a stored number was meant to be, when it is float noise around it."""
    try:
        stored = Decimal(text)
    except InvalidOperation:
        return None
    if not stored.is_finite():
        return None
    scale = money.currency_scale(currency.strip().upper())
    rounded = stored.quantize(Decimal(1).scaleb(-scale))
    if rounded == stored:
        return None
    # noise from binary floating point is far below a cent; a real third decimal is not
    relative = max(abs(rounded), Decimal(1)) * Decimal("1e-12")
    tolerance = min(Decimal(1).scaleb(-(scale + 3)), relative)
    if abs(stored - rounded) <= tolerance:
        return f"{rounded:f}"
    return None

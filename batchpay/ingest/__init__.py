"""Read a payout file (CSV or XLSX) into a polars frame of strings, reporting Excel damage.

Nothing is type-guessed: every cell arrives as the exact text the file holds, so account
numbers keep their leading zeros and amounts keep their digits. Damage done by Excel
(numbers in text columns, scientific notation, floating-point artefacts, date serials,
formulas, merged cells, hidden rows) is reported as :class:`~batchpay.errors.RowIssue`, never
silently repaired. A file that cannot be read as a payout file at all raises
:class:`~batchpay.errors.InputError` with a one-line message, a hint, and the row/column when
known.

One module per step: :mod:`~batchpay.ingest.sniff` says what the file is (size, format,
encoding, delimiter); :mod:`~batchpay.ingest.csv` or :mod:`~batchpay.ingest.xlsx` reads it into
a raw table of positional string columns; :mod:`~batchpay.ingest.canonical` maps that table to
the layout's canonical columns and checks its cells. :func:`read_bytes` reads a file given as
bytes and a name, wherever it came from; :func:`read_file` reads a path through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from batchpay.errors import InputError, RowIssue
from batchpay.ingest import canonical, csv, sniff, structure
from batchpay.layout import Layout, load_layout
from batchpay.source import PayoutFile

__all__ = ["IngestedFile", "read_bytes", "read_file", "read_source"]


@dataclass(frozen=True)
class IngestedFile:
    """A payout file read into canonical string columns, with what was noticed on the way.

    ``frame`` has every canonical column of the layout (``pl.String``; ``""`` is a blank cell;
    columns absent from the file are all blank) plus ``_row`` (``Int64``), the row number the
    user sees (the header is row 1). Blank rows are dropped; whitespace around values is trimmed;
    text amounts in the layout's declared number format (``1.250,00``) are rewritten as plain
    decimal text (``1250.00``), exactly, and those not written as declared are reported.
    """

    frame: pl.DataFrame
    issues: list[RowIssue]
    sha256: str
    format: Literal["csv", "xlsx"]
    filename: str
    size_bytes: int
    header_map: dict[str, str]
    unknown_columns: list[str]
    blank_rows: int
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    other_sheets: list[str] = field(default_factory=list)
    header_row: int = 1
    title_rows: tuple[tuple[int, str], ...] = ()
    totals_rows: tuple[structure.TotalRow, ...] = ()
    # canonical columns with no cell validation's normalisation would change (its
    # batchpay.normalise rules): validate leaves them as they are without looking again
    already_normal: frozenset[str] = frozenset()
    # (shortest, longest) cell in bytes of the canonical columns left as read: bounds that
    # hold for the frame (rows dropped after the scan can only narrow them)
    lengths: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    # canonical columns every cell of which is clean (batchpay.normalise.CLEAN): their
    # format rule passes every row
    clean: frozenset[str] = frozenset()

    @property
    def structure_notes(self) -> list[str]:
        """What was found around the payout rows: title rows skipped, totals rows."""
        notes = [
            f"row {row}: a title above the header (row {self.header_row}), skipped: {text!r}"
            for row, text in self.title_rows
        ]
        notes += [
            f"row {t.row}: a totals row ({t.label!r}"
            + (f", {t.currency} {t.amount}" if t.currency else f", {t.amount}" if t.amount else "")
            + "), not a payout"
            for t in self.totals_rows
        ]
        return notes

    @property
    def rows(self) -> int:
        """Number of data rows read (blank rows not counted)."""
        return self.frame.height

    def label(self, column: str) -> str:
        """The user's header for canonical ``column`` (the canonical name when absent)."""
        return self.header_map.get(column, column)


def read_file(path: str | Path, layout: Layout | None = None) -> IngestedFile:
    """Read the payout file at ``path`` (CSV or XLSX, by extension and content)."""
    layout = layout or load_layout()
    path = Path(path)
    try:
        size = path.stat().st_size
        sniff.check_size(size, path.name, layout)
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(
            f"cannot read {path}: {exc.strerror or exc}",
            code="not_found" if isinstance(exc, FileNotFoundError) else "unreadable",
            hint="check the path and that batchpay may read the file",
        ) from exc
    return read_bytes(data, path.name, layout)


def read_bytes(data: bytes, filename: str, layout: Layout | None = None) -> IngestedFile:
    """Read a payout file's exact bytes; ``filename`` decides CSV vs XLSX with the content."""
    return read_source(PayoutFile(filename, data), layout)


def read_source(source: PayoutFile, layout: Layout | None = None) -> IngestedFile:
    """:func:`read_bytes` of a :class:`~batchpay.source.PayoutFile` (its hash is taken once:
    a source read ahead was hashed while it was read)."""
    data, filename = source.data, source.name
    layout = layout or load_layout()
    sniff.check_size(len(data), filename, layout)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # hashing releases the GIL: it runs beside the parsing
        digest = pool.submit(lambda: source.sha256)
        kind = sniff.file_format(data, filename)
        if kind == "xlsx":
            from batchpay.ingest import xlsx  # lxml loads only for a workbook

            table = xlsx.read_xlsx(data, layout)
        else:
            table = csv.read_csv(data, layout)
        read = canonical.to_canonical(table, layout)
        frame, header_map, unknown, blank_rows, issues = read[:5]
        frame, totals = structure.split_totals_rows(frame)
        if totals:  # never paid; what the readers said about their cells does not matter
            at = {t.row for t in totals}
            issues = [i for i in issues if i.row not in at]
            if layout.file.check_total_row:
                label = header_map.get("amount", "amount")
                issues += structure.check_totals_rows(frame, totals, label)
        sha256 = digest.result()
    return IngestedFile(
        frame=frame,
        issues=issues,
        sha256=sha256,
        format=kind,
        filename=filename,
        size_bytes=len(data),
        header_map=header_map,
        unknown_columns=unknown,
        blank_rows=blank_rows,
        encoding=table.encoding,
        delimiter=table.delimiter,
        sheet=table.sheet,
        other_sheets=table.other_sheets,
        header_row=table.header_row,
        title_rows=tuple(table.title_rows),
        totals_rows=tuple(totals),
        already_normal=read.normal,
        lengths=read.lengths,
        clean=read.clean,
    )

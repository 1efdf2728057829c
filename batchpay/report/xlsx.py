"""The XLSX file: a "Summary" sheet and a "Rows" sheet laid out for accountants.

Amounts are numbers at the currency's scale (the exact decimal digits, never a float), ids
and references are text, rows needing a person come first.
"""

from __future__ import annotations

import io
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from copy import copy
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter

from batchpay.report.columns import (
    _COLUMNS,
    _INT,
    _MONEY,
    _NUMERIC_ENDINGS,
    _RATE,
    _TEXT,
    _TOTALS_HEADERS,
    _plain_cell,
    _safe_text,
    _totals_cells,
)
from batchpay.report.model import (
    ATTENTION_OUTCOMES,
    COMPLETED_OUTCOMES,
    OUTCOME_MEANINGS,
    PENDING_OUTCOMES,
    SANDBOX_BANNER,
    CurrencyTotals,
    Outcome,
    Report,
    _amount_scale,
    _amount_text,
)

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
    """Builds styled write-only cells for one sheet.

    A style (number format, font, fill, border, alignment) is registered with the workbook
    once; every later cell with the same style takes a copy of its index array. Setting the
    style objects on each cell would look each one up in the workbook's style lists again,
    which is most of the time a large report takes.
    """

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self._styles: dict[tuple[Any, ...], tuple[Any, Mapping[str, Any]]] = {}

    def text(self, value: str, **style: Any) -> Any:
        value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", _safe_text(value))[:_XLSX_MAX_TEXT]
        cell = WriteOnlyCell(self.ws, value=value)
        cell.data_type = "s"  # never a formula, whatever the text
        return self._styled(cell, "@", style)

    def integer(self, value: int, **style: Any) -> Any:
        cell = WriteOnlyCell(self.ws, value=value)
        return self._styled(cell, "0", style)

    def money(self, value: Decimal | None, currency: str, **style: Any) -> Any:
        if value is None:
            return self._styled(WriteOnlyCell(self.ws, value=None), None, style)
        text = _amount_text(value, currency)
        cell = self.number(text)
        return self._styled(cell, _number_format(_amount_scale(value, currency)), style)

    def rate(self, value: Decimal | None) -> Any:
        if value is None:
            return WriteOnlyCell(self.ws, value=None)
        cell = self.number(f"{value:f}")
        return self._styled(cell, "General", {})

    def moment(self, value: datetime, **style: Any) -> Any:
        """A date-time cell in UTC, to the second (Excel cells have no time zone)."""
        utc = value.astimezone(UTC).replace(tzinfo=None, microsecond=0)
        cell = WriteOnlyCell(self.ws, value=utc)
        return self._styled(cell, "yyyy-mm-dd hh:mm:ss", style)

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

    def _styled(self, cell: Any, number_format: str | None, style: Mapping[str, Any]) -> Any:
        # Keyed by the style objects' identities (kept alive by the cache itself): hashing
        # them by value on every cell would cost what the cache saves.
        key = (number_format, *((name, id(value)) for name, value in style.items()))
        known = self._styles.get(key)
        if known is not None:
            cell._style = known[0]  # write-only cells are written at once, never restyled
            return cell
        if number_format is not None:
            cell.number_format = number_format
        for name, value in style.items():
            setattr(cell, name, value)
        self._styles[key] = (copy(cell._style), style)
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


def _write_xlsx(
    report: Report,
    totals: Mapping[str, CurrencyTotals],
    path: Path,
    plain: list[list[str]] | None = None,
) -> None:
    """The workbook; ``plain`` is the rows' CSV text when already made (for column widths).

    openpyxl writes the package with the Rows sheet's header only; the data rows, most of
    the file, are then spliced into that sheet's XML as text made here (the same XML that
    openpyxl's per-cell writer gives, at a fraction of its cost: see :class:`_RowsXml`).
    """
    wb = Workbook(write_only=True)
    _summary_sheet(wb.create_sheet("Summary"), report, totals)
    rows_ws = wb.create_sheet("Rows")
    with tempfile.TemporaryFile() as body:
        # made before the save: the rows' cells register the styles the workbook lists
        for chunk in _rows_sheet(rows_ws, report, plain):
            # ASCII with character references, as openpyxl's writer (lxml) writes it
            body.write(chunk.encode("ascii", "xmlcharrefreplace"))
        package = io.BytesIO()
        wb.save(package)
        body.seek(0)
        _splice_rows(package, rows_ws.path.lstrip("/"), body, path)


# deflate's fastest level for the Rows sheet (most of a report's bytes): the same cells, a
# package about a fifth larger, compressed in a third of the time of the default level 6.
_ROWS_DEFLATE_LEVEL = 1


def _splice_rows(package: io.BytesIO, member: str, body: IO[bytes], path: Path) -> None:
    """Copy the package to ``path``, the data rows written into ``member``'s sheetData."""
    with (
        zipfile.ZipFile(package) as source,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            data = source.read(info)
            if info.filename != member:
                target.writestr(info, data)
                continue
            head, sep, tail = data.partition(b"</sheetData>")
            if not sep:  # openpyxl wrote <sheetData/> (no header): never, but stay correct
                head, sep, tail = data.partition(b"<sheetData/>")
                head, tail = head + b"<sheetData>", b"</sheetData>" + tail
            else:
                tail = sep + tail
            entry = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry._compresslevel = _ROWS_DEFLATE_LEVEL  # type: ignore[attr-defined]
            with target.open(entry, "w", force_zip64=True) as out:
                out.write(head)
                shutil.copyfileobj(body, out, 1 << 20)
                out.write(tail)


def _rows_sheet(ws: Any, report: Report, plain: list[list[str]] | None = None) -> Iterator[str]:
    """Lay out the Rows sheet and append its header; its data rows as sheet XML, lazily."""
    rows = report.rows_for_people()
    cells = plain if plain is not None else [[_plain_cell(c, r) for c in _COLUMNS] for r in rows]
    # text columns with values longer than their (capped) width wrap instead of being cut off
    wrapped: set[str] = set()
    for index, column in enumerate(_COLUMNS, start=1):
        lengths = [len(line[index - 1]) for line in cells]
        if column.kind == _MONEY:  # thousands separators
            lengths = [n + n // 3 for n in lengths]
        width = _width(lengths, column.header)
        ws.column_dimensions[get_column_letter(index)].width = width
        if column.kind == _TEXT and max(lengths, default=0) > width - 2:
            wrapped.add(column.header)
    last = get_column_letter(len(_COLUMNS))
    ws.freeze_panes = "C2"  # header row, and Row + Reference stay in view
    ws.auto_filter.ref = f"A1:{last}{len(rows) + 1}"
    ws.print_title_rows = "1:1"  # printed pages repeat the header, Row and Reference
    ws.print_title_cols = "A:B"
    _print_landscape_fit_width(ws)  # one page wide: not hundreds of pages of column strips
    ws.row_dimensions[1].height = 30.0  # two lines of wrapped header

    sheet = _Sheet(ws)
    ws.append([sheet.header(c.header, numeric=c.kind != _TEXT) for c in _COLUMNS])
    return _RowsXml(sheet, wrapped).rows(rows, cells)


_XML_SPECIAL = re.compile(r"[&<>\r]")
_XML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"}


def _xml_text(value: str) -> str:
    """Text content escaped as libxml2 (openpyxl's writer) escapes it."""
    if _XML_SPECIAL.search(value) is None:
        return value
    return _XML_SPECIAL.sub(lambda m: _XML_ESCAPES[m.group()], value)


class _RowsXml:
    """The Rows sheet's data rows as XML text, cell for cell what openpyxl would write.

    Each cell's style (and so its ``s=`` index) comes from a cell :class:`_Sheet` builds the
    first time that style is needed, so styles are registered with the workbook exactly as
    before; after that a cell is one string format.
    """

    _ROWS_PER_CHUNK = 500

    def __init__(self, sheet: _Sheet, wrapped: set[str]) -> None:
        self.sheet = sheet
        self.wrapped = wrapped
        self._style_ids: dict[tuple[Any, ...], str] = {}

    def _s(self, key: tuple[Any, ...], make: Callable[..., Any], *args: Any, **style: Any) -> str:
        """`` s="N"`` for the style of the cell ``make(*args, **style)`` (empty if unstyled)."""
        found = self._style_ids.get(key)
        if found is None:
            cell = make(*args, **style)
            found = self._style_ids[key] = f' s="{cell.style_id}"' if cell.has_style else ""
        return found

    def rows(self, rows: Iterable[Any], cells: Iterable[list[str]]) -> Iterator[str]:
        """The rows' XML; ``cells`` is each row's CSV text (:func:`_plain_cell`), whose
        amounts and plain text cells are the very digits and text the sheet shows.

        Made a column at a time, a chunk of rows at once: each column's cells share their
        kind, and mostly their style and the absence of anything to escape, which is then
        checked once per column rather than once per cell. Styles are still registered in
        the order the cells come row by row, as openpyxl's writer registers them."""
        rows, cells = list(rows), list(cells)
        if len(rows) != len(cells):
            raise ValueError(f"{len(rows)} rows but {len(cells)} lines of their text")
        letters = [get_column_letter(i) for i in range(1, len(_COLUMNS) + 1)]
        step = self._ROWS_PER_CHUNK
        for first in range(0, len(rows), step):
            part, shown = rows[first : first + step], cells[first : first + step]
            numbers = range(first + 2, first + 2 + len(part))
            made = [
                self._column(column, letters[i], part, [line[i] for line in shown], numbers)
                for i, column in enumerate(_COLUMNS)
            ]
            columns = [col for col, _ in made]
            firsts = [(row, i, k, make) for i, (_, f) in enumerate(made) for row, k, make in f]
            for row, _i, k, make in sorted(firsts, key=lambda f: (f[0], f[1])):
                if k not in self._style_ids:  # (two columns may first need one style)
                    self._s(k, make, row)
            yield "".join(
                f'<row r="{n}">{"".join(line)}</row>'
                for n, line in zip(
                    numbers, zip(*(self._cells(c) for c in columns), strict=True), strict=True
                )
            )

    def _column(
        self, column: Any, letter: str, rows: list[Any], shown: list[str], numbers: range
    ) -> tuple[tuple[Any, ...], list[tuple[int, Any, Callable[[int], Any]]]]:
        """One column of a chunk: its kind, each cell's style key (None: no cell) and the
        cell's text; and the styles it needs that are not registered yet."""
        values = [column.get(r) for r in rows]
        kind = column.kind
        sheet = self.sheet
        if kind == _MONEY:
            keys: list[Any] = [
                None if v is None or v == "" else ("money", _scale_of(t))
                for v, t in zip(values, shown, strict=True)
            ]

            def make(i: int) -> Any:
                return sheet.money(values[i], column.currency(rows[i]))
        elif kind == _RATE:
            keys = [None if v is None or v == "" else ("rate",) for v in values]

            def make(i: int) -> Any:
                return sheet.rate(values[i])
        elif kind == _INT:
            keys = [None if v is None or v == "" else ("int",) for v in values]

            def make(i: int) -> Any:
                return sheet.integer(values[i])
        else:
            if column.header in ("Outcome", "Needs attention"):
                styles: dict[Any, tuple[Any, dict[str, Any]]] = {}
                for r in rows:
                    if r.outcome not in styles:
                        style = _outcome_style(r.outcome)
                        styles[r.outcome] = (("text", *(id(v) for v in style.values())), style)
                keys = [
                    None if v is None or v == "" else styles[r.outcome][0]
                    for v, r in zip(values, rows, strict=True)
                ]

                def make(i: int) -> Any:
                    return sheet.text("x", **styles[rows[i].outcome][1])
            else:
                wrap = column.header in self.wrapped
                key, style = (("wrap",), _WRAP) if wrap else (("text",), {})
                keys = [None if v is None or v == "" else key for v in values]

                def make(i: int) -> Any:
                    return sheet.text("x", **style)

            # the CSV's text is _safe_text(str(value)): the same for a plain str
            shown = [
                t if type(v) is str else _safe_text(v) if k is not None else ""
                for v, t, k in zip(values, shown, keys, strict=True)
            ]
        # Each style this column needs first here: (row, its cell's maker), for rows() to
        # register in the order the cells come row by row.
        firsts: list[tuple[int, Any, Callable[[int], Any]]] = [
            (keys.index(k), k, make)
            for k in dict.fromkeys(keys)
            if k is not None and k not in self._style_ids
        ]
        return (kind, letter, numbers, keys, shown, values), firsts

    def _cells(self, col: tuple[Any, ...]) -> list[str]:
        kind, letter, numbers, keys, shown, values = col
        ids = self._style_ids
        if kind == _MONEY:
            return [
                "" if k is None else f'<c r="{letter}{n}"{ids[k]} t="n"><v>{t}</v></c>'
                for n, k, t in zip(numbers, keys, shown, strict=True)
            ]
        if kind == _RATE:
            return [
                "" if k is None else f'<c r="{letter}{n}"{ids[k]} t="n"><v>{v:f}</v></c>'
                for n, k, v in zip(numbers, keys, values, strict=True)
            ]
        if kind == _INT:
            return [
                "" if k is None else f'<c r="{letter}{n}"{ids[k]} t="n"><v>{v:.16g}</v></c>'
                for n, k, v in zip(numbers, keys, values, strict=True)
            ]
        texts: list[str] = shown
        blob = "\n".join(texts)  # (a newline is neither illegal nor escaped)
        if ILLEGAL_CHARACTERS_RE.search(blob) is not None:
            texts = [ILLEGAL_CHARACTERS_RE.sub("\ufffd", t) for t in texts]
        if max(map(len, texts), default=0) > _XLSX_MAX_TEXT:
            texts = [t[:_XLSX_MAX_TEXT] for t in texts]
        spaces = [' xml:space="preserve"' if t != t.strip() else "" for t in texts]
        if _XML_SPECIAL.search(blob) is not None:
            texts = [_xml_text(t) for t in texts]
        return [
            ""
            if k is None
            else f'<c r="{letter}{n}"{ids[k]} t="inlineStr"><is><t{sp}>{t}</t></is></c>'
            for n, k, t, sp in zip(numbers, keys, texts, spaces, strict=True)
        ]


def _scale_of(shown: str) -> int:
    """Decimals of an amount's CSV text (_amount_text(value, currency)): the scale
    (_amount_scale) its cell's number format shows."""
    point = shown.find(".")
    return 0 if point < 0 else len(shown) - point - 1


_WRAP = {"alignment": Alignment(wrap_text=True, vertical="top")}


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
        ("Generated at (UTC)", sheet.moment(report.generated_at, **left)),
        ("Rows in file", sheet.integer(len(report.rows), **left)),
        (
            "Rows needing attention",
            sheet.integer(report.attention_count, **left, **_count_style(report.attention_count)),
        ),
        ("Rows without a readable amount", sheet.integer(report.rows_without_amount, **left)),
        ("Control totals check", _control_check_cell(sheet, report, problems)),
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
    add([sheet.text("What each balance gave (payouts of this run)", font=_SECTION_FONT)])
    add([sheet.header(h, numeric=h != "Balance") for h in _FUNDING_HEADERS], height=45.0)
    for f in report.funding.values():
        cur = f.currency
        add(
            [
                sheet.text(cur),
                sheet.money(f.debited, cur),
                sheet.integer(f.completed.count),
                sheet.money(f.completed.amount, cur),
                sheet.integer(f.in_flight.count),
                sheet.money(f.in_flight.amount, cur),
                sheet.money(f.fees, cur),
                sheet.integer(f.refunded.count),
                sheet.money(f.refunded.amount, cur),
                sheet.money(f.fees_refunded, cur),
                sheet.integer(f.cross_currency),
            ]
        )

    add([])
    add([sheet.text("Rows by outcome", font=_SECTION_FONT)])
    add([sheet.header("Outcome"), sheet.header("Rows", numeric=True), sheet.header("Meaning")])
    for outcome, count in report.outcome_counts.items():
        style = _outcome_style(outcome) if count else {}
        meaning = OUTCOME_MEANINGS[Outcome(outcome)]
        add([sheet.text(outcome, **style), sheet.integer(count), sheet.text(meaning)])


_FUNDING_HEADERS = (
    "Balance",
    "Debited (completed + in flight)",
    "Completed payouts",
    "Completed debited",
    "In flight payouts",
    "In flight debited",
    "Fees (in debited)",
    "Failed or returned payouts",
    "Refunded",
    "Fees refunded",
    "Rows in another currency",
)


def _control_check_cell(sheet: _Sheet, report: Report, problems: list[str]) -> Any:
    if problems:
        return sheet.text("FAILED", **_yes_no_style(False))
    if not report.declared_totals:
        # the totals add up, but nobody said what they should be: nothing to pass
        return sheet.text("none declared")
    return sheet.text("passed", **_yes_no_style(True))


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

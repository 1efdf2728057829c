"""The Rows sheet spliced in as text is the XML openpyxl's per-cell writer gave.

``_old_rows_sheet`` is a frozen copy of batchpay/report/xlsx.py's ``_rows_sheet`` from before
the change (every data cell a styled ``WriteOnlyCell`` appended through openpyxl). Both
workbooks are written from the same reports; every part of the two packages, the Rows sheet
included, must be byte for byte the same.
"""

from __future__ import annotations

import re
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from openpyxl.styles import Alignment
from openpyxl.utils import get_column_letter

from batchpay.report import Report, ReportRow
from batchpay.report import xlsx as report_xlsx
from batchpay.report.columns import _COLUMNS, _INT, _MONEY, _RATE, _TEXT, _plain_cell
from batchpay.report.xlsx import _outcome_style, _print_landscape_fit_width, _Sheet, _width

from .conftest import MakeReport


def _old_rows_sheet(ws: Any, report: Report, plain: list[list[str]] | None = None) -> None:
    rows = report.rows_for_people()
    cells = plain if plain is not None else [[_plain_cell(c, r) for c in _COLUMNS] for r in rows]
    wrapped: set[str] = set()
    for index, column in enumerate(_COLUMNS, start=1):
        lengths = [len(line[index - 1]) for line in cells]
        if column.kind == _MONEY:
            lengths = [n + n // 3 for n in lengths]
        width = _width(lengths, column.header)
        ws.column_dimensions[get_column_letter(index)].width = width
        if column.kind == _TEXT and max(lengths, default=0) > width - 2:
            wrapped.add(column.header)
    wrap = {"alignment": Alignment(wrap_text=True, vertical="top")}
    last = get_column_letter(len(_COLUMNS))
    ws.freeze_panes = "C2"
    ws.auto_filter.ref = f"A1:{last}{len(rows) + 1}"
    ws.print_title_rows = "1:1"
    ws.print_title_cols = "A:B"
    _print_landscape_fit_width(ws)
    ws.row_dimensions[1].height = 30.0

    sheet = _Sheet(ws)
    ws.append([sheet.header(c.header, numeric=c.kind != _TEXT) for c in _COLUMNS])
    for r in rows:
        line: list[Any] = []
        for column in _COLUMNS:
            value = column.get(r)
            if value is None or value == "":
                line.append(None)
            elif column.kind == _MONEY:
                line.append(sheet.money(value, column.currency(r)))
            elif column.kind == _RATE:
                line.append(sheet.rate(value))
            elif column.kind == _INT:
                line.append(sheet.integer(value))
            elif column.header in ("Outcome", "Needs attention"):
                line.append(sheet.text(value, **_outcome_style(r.outcome)))
            elif column.header in wrapped:
                line.append(sheet.text(value, **wrap))
            else:
                line.append(sheet.text(value))
        ws.append(line)


def _old_write_xlsx(report: Report, path: Path) -> None:
    wb = Workbook(write_only=True)
    report_xlsx._summary_sheet(wb.create_sheet("Summary"), report, report.totals)
    _old_rows_sheet(wb.create_sheet("Rows"), report)
    wb.save(path)


_W3CDTF = re.compile(rb">\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ<")


def _parts(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    if "docProps/core.xml" in parts:
        # the workbook's created/modified times are the clock's second at writing: two
        # writes may straddle a second, so those two times are left out of the comparison
        parts["docProps/core.xml"] = _W3CDTF.sub(b">T<", parts["docProps/core.xml"])
    return parts


NASTY = [
    " leading and trailing ",
    "a & b < c > d \"q\" 'a'",
    "line\r\nbreak\ttab",
    '=HYPERLINK("x")',
    "bell\x07 and \x1b escape",
    "x" * 40_000,
    "ünïcödé – 東京 🙂",
]


def _nasty_rows() -> list[ReportRow]:
    rows = []
    for i, text in enumerate(NASTY):
        rows.append(
            ReportRow(
                row=i + 2,
                outcome=["invalid", "completed", "pending", "already_paid"][i % 4],
                reference=text,
                error_message=text,
                amount=Decimal("1234567.5") if i % 2 else Decimal("0.1"),
                currency=["EUR", "JPY", "BHD", "GBP"][i % 4],
            )
        )
    return rows


def _many_rows() -> list[ReportRow]:
    """More rows than one chunk of the writer, with styles first needed past the first chunk
    (an outcome's colours, a currency's scale, a rate, wrapped text), a later column's before
    an earlier one's, and nasty text between (none needs attention: they stay in order)."""
    rows = []
    for i in range(1_234):
        late = i >= 700
        rows.append(
            ReportRow(
                row=i + 2,
                outcome=("already_paid" if i % 3 else "pending") if late else "completed",
                reference=NASTY[i % len(NASTY)][:200] if i % 7 == 0 else f"INV-{i}",
                error_message=("x " * 80) if late and i % 5 == 0 else "",
                amount=Decimal(i) / (1000 if late else 100),
                currency=("BHD" if i % 2 else "JPY") if late else "EUR",
                exchange_rate=Decimal("1.0825") if late else None,
                attempt=1 + (i % 2),
            )
        )
    return rows


@pytest.mark.parametrize("kind", ["sample", "nasty", "empty", "live", "many"])
def test_the_workbook_is_byte_for_byte_what_openpyxl_wrote(
    kind: str, make_report: MakeReport, tmp_path: Path
) -> None:
    """Every part (Rows sheet, styles, Summary) equals the per-cell openpyxl writer's."""
    report = {
        "sample": lambda: make_report(),
        "nasty": lambda: make_report(rows=_nasty_rows()),
        "empty": lambda: make_report(rows=[]),
        "live": lambda: make_report(environment="live"),
        "many": lambda: make_report(rows=_many_rows()),
    }[kind]()
    old, new = tmp_path / "old.xlsx", tmp_path / "new.xlsx"
    _old_write_xlsx(report, old)
    report_xlsx._write_xlsx(report, report.totals, new)
    old_parts, new_parts = _parts(old), _parts(new)
    assert list(new_parts) == list(old_parts)
    for name, data in old_parts.items():
        assert new_parts[name] == data, name


@pytest.mark.parametrize("rows", [_nasty_rows, _many_rows], ids=["nasty", "many"])
def test_styles_are_registered_in_the_order_the_per_cell_writer_registered_them(
    rows: Any, make_report: MakeReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workbook lists each style where the cell that first needs it comes, row by row
    (the data above happen to write the same bytes in any order; another workbook may not)."""
    report = make_report(rows=rows())
    order: list[tuple[Any, ...]] = []
    styled = _Sheet._styled

    def recording(self: _Sheet, cell: Any, number_format: Any, style: Any) -> Any:
        key = (number_format, *((name, id(value)) for name, value in style.items()))
        if key not in self._styles:
            order.append((number_format, *sorted(style)))
        return styled(self, cell, number_format, style)

    monkeypatch.setattr(_Sheet, "_styled", recording)
    report_xlsx._write_xlsx(report, report.totals, tmp_path / "new.xlsx")
    new, order[:] = list(order), []
    _old_write_xlsx(report, tmp_path / "old.xlsx")
    assert new == order

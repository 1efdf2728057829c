"""Files that look odd but are fine are read: the refusals are no broader than the danger."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest

from batchpay.testing import HEADERS, payout_row

from .corpus import Build, base_rows, csv_text, openpyxl_book, write
from .spy import invoke, no_traceback


def _notes_sheet(book: openpyxl.Workbook) -> None:
    book.create_sheet("Notes").append(["approved by", "J. Smith", "see email"])


def _last_month_hidden(book: openpyxl.Workbook) -> None:
    old = book.create_sheet("February")
    old.append(HEADERS)
    row = payout_row(9)
    old.append([row[h] for h in HEADERS])
    old.sheet_state = "hidden"


def _summary_first_with_headers(book: openpyxl.Workbook) -> None:
    # a summary sheet whose first row mentions some payout words is not a payout sheet
    summary = book.create_sheet("Summary", 1)
    summary.append(["currency", "amount", "rows"])


NAMED_SHEET = '\n[file]\nsheet = "March"\n'


def _second_payout_sheet(book: openpyxl.Workbook) -> None:
    march = book.create_sheet("March")
    march.append(HEADERS)
    for i in range(3, 5):
        row = payout_row(i)
        march.append([row[h] for h in HEADERS])


FINE: list[tuple[str, Build, str | None]] = [
    ("utf8-bom.csv", write(b"\xef\xbb\xbf" + csv_text().encode()), None),
    ("utf8-bom-twice.csv", write(b"\xef\xbb\xbf\xef\xbb\xbf" + csv_text().encode()), None),
    ("lf-line-endings.csv", write(csv_text().replace("\r\n", "\n")), None),
    ("semicolons-declared.csv", write(csv_text(sep=";")), '\n[file]\ndelimiter = ";"\n'),
    ("tabs-declared.tsv", write(csv_text(sep="\t")), '\n[file]\ndelimiter = "\\t"\n'),
    ("comma-in-header-text.csv", write(csv_text().replace(",purpose,", ',"purpose, code",', 1)),
     None),
    ("zwnj-in-a-name.csv", write(csv_text(base_rows(row2={"first_name": "Mehr\u200cdad"}))), None),
    ("notes-sheet.xlsx", openpyxl_book(_notes_sheet), None),
    ("hidden-old-payouts.xlsx", openpyxl_book(_last_month_hidden), None),
    ("summary-sheet.xlsx", openpyxl_book(_summary_first_with_headers), None),
    ("several-sheets-one-named.xlsx", openpyxl_book(_second_payout_sheet), NAMED_SHEET),
]  # fmt: skip


def _layout(folder: Path, extra: str) -> Path:
    from importlib import resources

    text = resources.files("batchpay").joinpath("data/layout.toml").read_text("utf-8")
    # the [file] table is replaced by the case's own
    start = text.index("[file]")
    end = text.index("[limits]")
    path = folder / "layout.toml"
    path.write_text(text[:start] + text[end:] + extra, encoding="utf-8")
    return path


@pytest.mark.parametrize(("name", "build", "layout"), FINE, ids=[c[0] for c in FINE])
def test_an_odd_but_sound_file_validates(
    tmp_path: Path, name: str, build: Callable[[Path], None], layout: str | None
) -> None:
    """`batchpay validate` reads it cleanly: exit 0, every row valid, nothing sent."""
    path = tmp_path / name
    build(path)
    args = ["validate", str(path)]
    if layout is not None:
        args += ["--layout", str(_layout(tmp_path, layout))]
    done = invoke(tmp_path, args)
    assert done.exit_code == 0, done.output
    rows = 2 if name.startswith("several-sheets") else 3
    assert f"{rows} rows, {rows} valid" in done.result.stdout
    assert no_traceback(done.output) and done.requests.requests == []

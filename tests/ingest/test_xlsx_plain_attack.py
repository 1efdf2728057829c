"""Hostile plain-looking sheets: the column-wise reader gives what the old reader gives.

Each case is a workbook that once read differently on the plain path (a row dropped, an issue
lost, a crash); each must now read as ``oracle_xlsx`` reads it, usually by falling back to
the XML parser.
"""

from __future__ import annotations

import pytest

from tests.ingest.helpers import HEADER, MAIN, VALID, col_letter
from tests.ingest.test_xlsx_oracle import assert_same
from tests.ingest.test_xlsx_plain import is_plain, workbook


def _cells(number: int) -> str:
    return "".join(
        f'<c r="{col_letter(i)}{number}" t="inlineStr"><is><t>{VALID[h]}</t></is></c>'
        for i, h in enumerate(HEADER)
    )


def _header() -> str:
    return "".join(
        f'<c r="{col_letter(i)}1" t="inlineStr"><is><t>{h}</t></is></c>'
        for i, h in enumerate(HEADER)
    )


def _sheet(*rows: str) -> str:
    body = f'<row r="1">{_header()}</row><row r="2">{_cells(2)}</row>' + "".join(rows)
    return f'<worksheet xmlns="{MAIN}"><sheetData>{body}</sheetData></worksheet>'


ROWS = {
    # the row tag found by "<row[^>]*>" ended inside the value, at "/>": the row was taken
    # for an empty one and its payee silently dropped as a blank row
    "a row attribute value holding />": f'<row r="3" foo="/>">{_cells(3)}</row>',
    "a row attribute value holding > before hidden": (
        f'<row r="3" foo="a>" hidden="1">{_cells(3)}</row>'
    ),
}


@pytest.mark.parametrize("name", sorted(ROWS))
def test_hostile_row_tags_read_as_before(name: str) -> None:
    xml = _sheet(ROWS[name])
    assert not is_plain(xml)
    assert assert_same(workbook(xml)) == "read"

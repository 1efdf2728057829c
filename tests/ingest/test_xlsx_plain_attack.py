"""Hostile plain-looking sheets: the column-wise reader gives what the old reader gives.

Each case is a workbook that once read differently on the plain path (a row dropped, an issue
lost, a crash); each must now read as ``oracle_xlsx`` reads it, usually by falling back to
the XML parser.
"""

from __future__ import annotations

import io
import zipfile

import pytest

from batchpay.errors import InputError
from batchpay.ingest.xlsx import read_xlsx
from tests.ingest.helpers import HEADER, MAIN, VALID, col_letter
from tests.ingest.test_xlsx_oracle import assert_same
from tests.ingest.test_xlsx_plain import (
    LAYOUT,
    _sheet_of_strings,
    is_plain,
    strings_are_plain,
    workbook,
)


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


_ITEMS = "<si><t>a</t></si><si><t>b</t></si>"
SST = {
    # with every item plain, nothing parsed the declaration or the root tag: a damaged part
    # was read where the XML parser refuses the workbook
    "a root attribute twice": f'<sst xmlns="{MAIN}" count="1" count="2">{_ITEMS}</sst>',
    "an undeclared prefix on the root": f'<sst xmlns="{MAIN}" x:a="1">{_ITEMS}</sst>',
    "a prefix with two colons": f'<sst xmlns="{MAIN}" a:b:c="1">{_ITEMS}</sst>',
    "xmlns declared twice": f'<sst xmlns="{MAIN}" xmlns="{MAIN}">{_ITEMS}</sst>',
    "the xml prefix rebound": f'<sst xmlns:xml="urn:x">{_ITEMS}</sst>',
    "a prefix undeclared": f'<sst xmlns="{MAIN}" xmlns:a="">{_ITEMS}</sst>',
    "a control character in a root attribute": f'<sst xmlns="{MAIN}" a="\x01">{_ITEMS}</sst>',
    "a declaration out of order": (
        f'<?xml encoding="UTF-8" version="1.0"?><sst xmlns="{MAIN}">{_ITEMS}</sst>'
    ),
    "a declaration that is not one": f'<?xml junk?><sst xmlns="{MAIN}">{_ITEMS}</sst>',
}


@pytest.mark.parametrize("name", sorted(SST))
def test_damaged_shared_strings_prologues_are_refused_as_before(name: str) -> None:
    data = workbook(_sheet_of_strings(2), SST[name])
    assert not strings_are_plain(data)
    assert assert_same(data) == "refused"


def test_one_attribute_twice_through_two_prefixes_is_refused_as_before() -> None:
    """``a:x`` and ``b:x`` on a row, a and b bound to one namespace: the same attribute
    twice, which the XML parser refuses; the row tags are checked by name only."""
    xml = _sheet(f'<row r="3" a:x="1" b:x="2">{_cells(3)}</row>').replace(
        f'<worksheet xmlns="{MAIN}"', f'<worksheet xmlns="{MAIN}" xmlns:a="urn:u" xmlns:b="urn:u"'
    )
    assert not is_plain(xml)
    assert assert_same(workbook(xml)) == "refused"
    fine = xml.replace('xmlns:b="urn:u"', 'xmlns:b="urn:v"')
    assert is_plain(fine)
    assert assert_same(workbook(fine)) == "read"


@pytest.mark.parametrize("part", ["sst", "workbook", "styles"])
def test_an_unknown_encoding_is_refused_not_a_crash(part: str) -> None:
    """A part declaring an encoding Python does not know: not plain, and the XML parser's
    LookupError was a traceback (in the old reader too); now the workbook is refused as
    damaged."""
    declaration = '<?xml version="1.0" encoding="UT8"?>'
    sst = f'<sst xmlns="{MAIN}">{_ITEMS}</sst>'
    data = workbook(_sheet_of_strings(2), declaration + sst if part == "sst" else sst)
    if part != "sst":
        name = "xl/workbook.xml" if part == "workbook" else "xl/styles.xml"
        buffer = io.BytesIO()
        with (
            zipfile.ZipFile(io.BytesIO(data)) as source,
            zipfile.ZipFile(buffer, "w") as target,
        ):
            for info in source.infolist():
                text = source.read(info)
                if info.filename == name:
                    text = declaration.encode() + text.split(b"?>", 1)[-1]
                target.writestr(info, text)
        data = buffer.getvalue()
    with pytest.raises(InputError) as refused:
        read_xlsx(data, LAYOUT)
    assert refused.value.code == "corrupt_xlsx"


LATIN1 = [
    '<?xml version="1.0" encoding = "ISO-8859-1"?>',
    '<?xml version="1.0" encoding ="latin1"?>',
    "<?xml version='1.0' encoding= 'windows-1252'?>",
]


@pytest.mark.parametrize("declaration", LATIN1)
def test_an_encoding_declared_with_spaces_is_not_read_as_utf8(declaration: str) -> None:
    """``encoding = "latin1"`` (XML allows spaces around =) escaped the UTF-8 check: the
    rows were cut as UTF-8 where the XML parser decodes Latin-1, so the bytes of "Müller"
    read "Müller" instead of "MÃ¼ller" — a name not the one the file holds."""
    last = HEADER.index("Last Name")
    cell = f'<c r="{col_letter(last)}3" t="inlineStr"><is><t>Müller</t></is></c>'
    cells = _cells(3).split("</c>")
    cells[last] = cell.removesuffix("</c>")
    xml = declaration + _sheet(f'<row r="3">{"</c>".join(cells)}</row>')
    assert not is_plain(xml)
    assert assert_same(workbook(xml)) == "read"
    sst = declaration + f'<sst xmlns="{MAIN}"><si><t>Müller</t></si><si><t>b</t></si></sst>'
    data = workbook(_sheet_of_strings(2), sst)
    assert not strings_are_plain(data)
    assert assert_same(data) == "read"


@pytest.mark.parametrize(
    "stray",
    [
        '<c r="A9" t="e"><v>#N/A</v></c>',
        f'<c r="{col_letter(HEADER.index("Amount"))}9"><v>12</v></c>',
        '<row r="9"/><c r="A9"><v>0012</v></c>',
        '<c r="A9"><f>1</f><v>2</v></c>',
    ],
)
def test_a_cell_outside_any_row_is_not_plain(stray: str) -> None:
    """A cell after the last </row>, in sheetData itself, was checked with no row: issues
    and a numeric amount for row None. It is left to the XML parser, which passes over a
    cell outside a row (the old reader gave its issues to the row before it)."""
    xml = _sheet(f'<row r="3">{_cells(3)}</row>').replace("</sheetData>", f"{stray}</sheetData>")
    assert not is_plain(xml)
    table = read_xlsx(workbook(xml), LAYOUT)
    assert all(issue.row is not None for issue in table.issues)
    assert None not in table.numeric_amounts
    assert table.frame.height == 2

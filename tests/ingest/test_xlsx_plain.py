"""Plain sheets cut column-wise read exactly as the frozen old reader reads them.

``batchpay.ingest.xlsx_plain`` replaces XML parsing for sheets in the regular shape most
programs write. These tests write such sheets by hand with every shape it accepts — entity and
character references, line ends, whitespace, OOXML ``_xHHHH_`` escapes, ``xml:space``, empty
and self-closed cells and rows, sparse columns and columns past Z, both attribute orders,
shared strings, numbers under every column kind and style, booleans, errors, formulas and rich
text among them — and compare the whole Table with ``oracle_xlsx`` (the reader from before
any of this). Each generated sheet is also checked to be taken as plain, so the comparison is
of the column-wise path, not of the fallback; and the shapes it must not take are checked to
fall back.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchpay.errors import InputError
from batchpay.ingest.xlsx import _PlainSheetParser, _XlsxReader, read_xlsx
from batchpay.ingest.xlsx_plain import NotPlain, cut_sheet
from batchpay.layout import Layout, load_layout
from tests.ingest import oracle_xlsx
from tests.ingest.helpers import HEADER, MAIN, VALID, col_letter, xlsx_bytes
from tests.ingest.test_xlsx_oracle import _outcome, assert_same

LAYOUT = load_layout()
ROOT = Path(__file__).resolve().parents[2]
X14AC = "http://schemas.microsoft.com/office/spreadsheetml/2009/9/ac"

# pieces of cell text as they stand in the XML (already escaped where XML needs it)
FRAGMENTS = [
    "a",
    "Z",
    "12",
    "0012",
    "1E+5",
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "\r",
    "&amp;",
    "&lt;",
    "&gt;",
    "&quot;",
    "&apos;",
    "&#65;",
    "&#x41;",
    "&#x1F600;",
    "&#13;",
    "&#10;",
    "&#xA0;",
    "_x000D_",
    "_x005F_x0041_",
    "_x0041_",
    "é",
    "€",
    "\u00a0",
    "\u3000",
    ">",
    '"',
    "'",
    "]",
    "]]",
]
# "]]" then ">" would make "]]>", which XML does not allow in text (see NOT_PLAIN)
XML_TEXT = (
    st.lists(st.sampled_from(FRAGMENTS), max_size=4)
    .map("".join)
    .filter(lambda text: "]]>" not in text)
)


@dataclass(frozen=True)
class RawCell:
    """A cell as XML: its attributes after r= and its content."""

    attrs: str
    body: str | None  # None: self-closed
    space: bool = False  # " />", as ElementTree writes it

    def xml(self, ref: str) -> str:
        if self.body is None:
            return f'<c r="{ref}"{self.attrs}{" " if self.space else ""}/>'
        return f'<c r="{ref}"{self.attrs}>{self.body}</c>'


def _attrs(t: str | None, s: int | None, s_first: bool) -> str:
    parts = [f' t="{t}"'] if t else []
    if s is not None:
        parts.insert(0 if s_first else len(parts), f' s="{s}"')
    return "".join(parts)


STRINGS = ["Müller &amp; Co", "_x0041_", "  ", "0012", "line&#10;two"]
STYLE = st.one_of(st.none(), st.integers(0, 5))


@st.composite
def raw_cells(draw: st.DrawFn) -> RawCell:
    shape = draw(
        st.sampled_from(
            ["inline", "spaced", "number", "shared", "bool", "error", "str", "empty", "other"]
        )
    )
    s, s_first = draw(STYLE), draw(st.booleans())
    text = draw(XML_TEXT)
    if shape == "inline":
        body = draw(
            st.sampled_from(
                [f"<is><t>{text}</t></is>", "<is><t/></is>", "<is/>", "<is><t /></is>", "<is />"]
            )
        )
        return RawCell(_attrs("inlineStr", s, s_first), body)
    if shape == "spaced":
        return RawCell(
            _attrs("inlineStr", s, s_first), f'<is><t xml:space="preserve">{text}</t></is>'
        )
    if shape == "number":
        stored = draw(st.sampled_from(["0", "12", "0012", "1E+20", "45000", "-3.5", " 7 ", ""]))
        t = draw(st.sampled_from([None, "n"]))
        empty = draw(st.sampled_from(["<v/>", "<v />"]))
        return RawCell(_attrs(t, s, s_first), f"<v>{stored}</v>" if stored else empty)
    if shape == "shared":
        index = draw(st.integers(0, len(STRINGS) - 1))
        return RawCell(_attrs("s", s, s_first), f"<v>{index}</v>")
    if shape == "bool":
        return RawCell(_attrs("b", s, s_first), draw(st.sampled_from(["<v>1</v>", "<v>0</v>"])))
    if shape == "error":
        return RawCell(_attrs("e", s, s_first), draw(st.sampled_from(["<v>#N/A</v>", None])))
    if shape == "str":
        return RawCell(_attrs("str", s, s_first), f"<v>{text}</v>")
    if shape == "empty":
        t = draw(st.sampled_from([None, "inlineStr", "s", "n"]))
        return RawCell(
            _attrs(t, s, s_first), draw(st.sampled_from([None, ""])), draw(st.booleans())
        )
    # shapes read by the XML parser one cell at a time, among the others
    return RawCell(
        _attrs(draw(st.sampled_from([None, "str", "inlineStr"])), s, s_first),
        draw(
            st.sampled_from(
                [
                    f"<f>A1&amp;B1</f><v>{text}</v>",
                    "<f/><v>3</v>",
                    f"<is><r><t>{text}</t></r><r><t>b</t></r></is>",
                    "<is><t>a</t><rPh><t>phonetic</t></rPh></is>",
                ]
            )
        ),
    )


ROW_EXTRAS = st.sampled_from(["", ' spans="1:30"', ' hidden="1"', ' x14ac:dyDescent="0.25"'])
WIDTH = len(HEADER) + 10  # past column Z


@st.composite
def plain_sheets(draw: st.DrawFn) -> str:
    """A worksheet's XML in the plain shape: title rows perhaps, the real header (perhaps
    short of a required column, so that rows below are read as it is decided), then rows."""
    rows = []
    number = 0
    for title in draw(st.lists(st.sampled_from(["Payouts for March", "Total: 12"]), max_size=2)):
        number += draw(st.integers(1, 2))
        rows.append(
            f'<row r="{number}"><c r="A{number}" t="inlineStr"><is><t>{title}</t></is></c></row>'
        )
    number += 1
    header = HEADER if draw(st.booleans()) else HEADER[:-3]
    rows.append(
        f'<row r="{number}">'
        + "".join(
            f'<c r="{col_letter(i)}{number}" t="inlineStr"><is><t>{h}</t></is></c>'
            for i, h in enumerate(header)
        )
        + "</row>"
    )
    for _ in range(draw(st.integers(0, 8))):
        number += draw(st.integers(1, 3))
        if draw(st.integers(0, 5)) == 0:  # an empty row, as Excel writes a formatted one
            rows.append(f'<row r="{number}"{draw(ROW_EXTRAS)}{draw(st.sampled_from(["", " "]))}/>')
            number += 1
        columns = draw(st.lists(st.integers(0, WIDTH - 1), unique=True, max_size=WIDTH))
        valid = draw(st.booleans())
        cells = []
        for col in sorted(columns) if not valid else range(len(HEADER)):
            ref = f"{col_letter(col)}{number}"
            if valid and col not in columns:
                cells.append(f'<c r="{ref}" t="inlineStr"><is><t>{VALID[HEADER[col]]}</t></is></c>')
            else:
                cells.append(draw(raw_cells()).xml(ref))
        rows.append(f'<row r="{number}"{draw(ROW_EXTRAS)}>{"".join(cells)}</row>')
    if draw(st.booleans()):
        rows.append(f'<row r="{number + 1}"/>')
    cols = '<cols><col min="3" max="4" hidden="1"/></cols>' if draw(st.booleans()) else ""
    merges = (
        '<mergeCells count="1"><mergeCell ref="B2:B3"/></mergeCells>' if draw(st.booleans()) else ""
    )
    declaration = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    return (
        (declaration if draw(st.booleans()) else "")
        + f'<worksheet xmlns="{MAIN}" xmlns:x14ac="{X14AC}">'
        + f"{cols}<sheetData>{''.join(rows)}</sheetData>{merges}</worksheet>"
    )


def workbook(sheet_xml: str, sst: str | None = None) -> bytes:
    """A workbook whose first sheet is ``sheet_xml`` (shared strings and styles included)."""
    if sst is None:
        sst = f'<sst xmlns="{MAIN}">' + "".join(f"<si><t>{s}</t></si>" for s in STRINGS)
        sst += "</sst>"
    return xlsx_bytes(
        [],
        shared_strings=["?"],
        extra={
            "xl/worksheets/sheet1.xml": sheet_xml.encode(),
            "xl/workbook.xml": (
                f'<workbook xmlns="{MAIN}" xmlns:r="http://schemas.openxmlformats.org/'
                'officeDocument/2006/relationships"><sheets>'
                '<sheet name="Payouts" sheetId="1" r:id="rId1"/></sheets></workbook>'
            ).encode(),
            "xl/_rels/workbook.xml.rels": _workbook_rels(),
            "xl/sharedStrings.xml": sst.encode(),
        },
    )


def _workbook_rels() -> bytes:
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    return (
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{rel}/sharedStrings" Target="sharedStrings.xml"/>'
        f'<Relationship Id="rId3" Type="{rel}/styles" Target="styles.xml"/>'
        "</Relationships>"
    ).encode()


def is_plain(sheet_xml: str) -> bool:
    """Whether the workbook of ``sheet_xml`` is read column-wise (or refused on the way),
    not handed to the XML parser from the start."""
    try:
        cut_sheet(io.BytesIO(sheet_xml.encode()))
    except NotPlain:
        return False
    return reads_plainly(workbook(sheet_xml))


def reads_plainly(data: bytes) -> bool:
    """Whether the first sheet of the workbook ``data`` is read column-wise."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    reader = _XlsxReader(archive, LAYOUT)
    names = archive.namelist()
    shared = "xl/sharedStrings.xml"
    strings = reader._shared_strings(shared) if shared in names else []
    plain = _PlainSheetParser(reader, "xl/worksheets/sheet1.xml", strings, set())
    try:
        return plain.parse_plain() is not None
    except InputError:
        return True


@pytest.mark.parametrize("name", ["payouts.xlsx", "bad/excel-damaged.xlsx"])
def test_the_sample_workbooks_are_read_column_wise(name: str) -> None:
    """The samples (openpyxl's ``<c ... />``, a formula among them) take the column-wise
    path, and read as the old reader reads them."""
    data = (ROOT / "samples" / name).read_bytes()
    assert reads_plainly(data)
    assert assert_same(data) == "read"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(plain_sheets())
def test_generated_plain_sheets_read_as_the_old_reader_reads_them(sheet_xml: str) -> None:
    """Every accepted shape of cell, row and text: the same Table, or the same refusal."""
    assert is_plain(sheet_xml)
    assert_same(workbook(sheet_xml))


def test_a_generated_sheet_has_rows_below_the_header() -> None:
    """The generator is not vacuous: its sheets hold rows read column-wise, with issues."""
    xml = (
        f'<worksheet xmlns="{MAIN}"><sheetData><row r="1">'
        + "".join(
            f'<c r="{col_letter(i)}1" t="inlineStr"><is><t>{h}</t></is></c>'
            for i, h in enumerate(HEADER)
        )
        + '</row><row r="2"><c r="A2"><v>0012</v></c>'
        + '<c r="AD2" t="inlineStr"><is><t> x&amp;y </t></is></c></row><row r="3">'
        + '<c r="B3" t="inlineStr"><is><t>  </t></is></c>'
        + '<c r="C3" t="inlineStr"><is><t>z</t></is></c></row>'
        + "</sheetData></worksheet>"
    )
    assert is_plain(xml)
    kind, table = _outcome(read_xlsx, workbook(xml), LAYOUT)
    assert kind == "read"
    rows, issues = table[2], table[3]
    assert len(rows) == 2 and rows[1][1] == "  "  # a value of spaces is kept as it is
    assert {code for _, _, code, _ in issues} >= {"stored_as_number", "no_header"}
    assert_same(workbook(xml))


NOT_PLAIN = {
    "comment": ("<sheetData>", "<sheetData><!-- x -->"),
    "cdata": ("<t>Reference</t>", "<t><![CDATA[Ref]]></t>"),
    "processing instruction": ("<sheetData>", "<sheetData><?pi x?>"),
    "whitespace between rows": ("</row><row", "</row>\n<row"),
    "single quotes": ('<row r="2"', "<row r='2'"),
    "prefixed elements": ("<sheetData>", "<sheetData xmlns:x='u'>"),
    "row without a number": ('<row r="2"', "<row"),
    "rows out of order": ('<row r="3"', '<row r="2"'),
    "an attribute twice": ('<row r="2"', '<row r="2" spans="1:2" spans="1:2"'),
    "a character that is not XML": ("<t>Reference</t>", "<t>R\x01f</t>"),
    "a bad reference": ("<t>Reference</t>", "<t>R&#0;f</t>"),
    "an entity": ("<t>Reference</t>", "<t>R&nbsp;f</t>"),
    "a bare ampersand": ("<t>Reference</t>", "<t>R&f</t>"),
    "]]> in text": ("<t>Reference</t>", "<t>R]]>f</t>"),
    "an encoding other than UTF-8": ("", '<?xml version="1.0" encoding="ISO-8859-1"?>'),
    "an undeclared prefix": ('<row r="2"', '<row r="2" q:a="1"'),
    "a row after sheetData": ("</worksheet>", '<extLst><row r="9"></row></extLst></worksheet>'),
    "a merge inside a cell": (
        "<is><t>January invoice</t></is>",
        '<mergeCell ref="A1:A3"/><v>x</v>',
    ),
    "a hidden col inside a cell": ("<is><t>January invoice</t></is>", '<col min="1" hidden="1"/>'),
    "a cell without a reference": ('<c r="B2"', '<c><v>1</v></c><c r="B2"'),
}


def _base_sheet() -> str:
    header = "".join(
        f'<c r="{col_letter(i)}1" t="inlineStr"><is><t>{h}</t></is></c>'
        for i, h in enumerate(HEADER)
    )
    body = "".join(
        f'<c r="{col_letter(i)}{n}" t="inlineStr"><is><t>{VALID[h]}</t></is></c>'
        for n in (2, 3)
        for i, h in enumerate(HEADER)
    )
    second = body[: len(body) // 2], body[len(body) // 2 :]
    return (
        f'<worksheet xmlns="{MAIN}"><sheetData><row r="1">{header}</row>'
        f'<row r="2">{second[0]}</row><row r="3">{second[1]}</row></sheetData></worksheet>'
    )


@pytest.mark.parametrize("name", sorted(NOT_PLAIN))
def test_unusual_sheets_are_read_by_the_xml_parser_the_same(name: str) -> None:
    """What the plain shape does not cover falls back, and still reads (or is refused) the
    same as before."""
    old, new = NOT_PLAIN[name]
    base = _base_sheet()
    assert is_plain(base)
    xml = new + base if old == "" else base.replace(old, new, 1)
    assert xml != base
    if name not in ("cdata", "comment", "processing instruction", "whitespace between rows"):
        assert not is_plain(xml)
    assert_same(workbook(xml))


@pytest.mark.parametrize("plain", [True, False])
def test_the_sheet_is_read_through_the_size_budget(plain: bool) -> None:
    """A sheet read column-wise still counts against limits.max_xlsx_uncompressed_bytes, and
    a fallback does not count it twice: the old reader's smallest limit is the new one's."""
    base = _base_sheet()
    unusual = base.replace("</row><row", "</row>\n<row")
    assert is_plain(base) and not is_plain(unusual)
    data = workbook(base if plain else unusual)

    def limited(limit: int) -> Layout:
        return replace(LAYOUT, limits=replace(LAYOUT.limits, max_xlsx_uncompressed_bytes=limit))

    low, high = (
        1,
        10 * len(data)
        + 10 * sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(data)).infolist()),
    )
    while low < high:  # the smallest limit under which the old reader reads the workbook
        middle = (low + high) // 2
        if _outcome(oracle_xlsx.read_xlsx, data, limited(middle))[0] == "refused":
            low = middle + 1
        else:
            high = middle
    assert assert_same(data, limited(low)) == "read"
    assert assert_same(data, limited(low - 1)) == "refused"


SST_ITEMS = st.one_of(
    XML_TEXT.map(lambda t: f"<t>{t}</t>"),
    XML_TEXT.map(lambda t: f'<t xml:space="preserve">{t}</t>'),
    st.sampled_from(["<t/>", "<t></t>", ""]),
    XML_TEXT.map(lambda t: f"<r><rPr><b/></rPr><t>{t}</t></r><r><t>_x0041_</t></r>"),
    XML_TEXT.map(lambda t: f'<t>{t}</t><rPh sb="0" eb="1"><t>ふ</t></rPh>'),
)


def _sst(items: list[str], attrs: str, declaration: bool) -> str:
    head = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n' if declaration else ""
    body = "".join(f"<si>{item}</si>" for item in items)
    return f'{head}<sst xmlns="{MAIN}"{attrs}>{body}</sst>'


def _sheet_of_strings(count: int) -> str:
    """The header, then a row per shared string: its text in Description and Last Name."""
    rows = [
        '<row r="1">'
        + "".join(
            f'<c r="{col_letter(i)}1" t="inlineStr"><is><t>{h}</t></is></c>'
            for i, h in enumerate(HEADER)
        )
        + "</row>"
    ]
    last, description = HEADER.index("Last Name"), HEADER.index("Description")
    for n in range(count):
        cells = "".join(
            f'<c r="{col_letter(i)}{n + 2}" t="s"><v>{n}</v></c>'
            if i in (last, description)
            else f'<c r="{col_letter(i)}{n + 2}" t="inlineStr"><is><t>{VALID[h]}</t></is></c>'
            for i, h in enumerate(HEADER)
        )
        rows.append(f'<row r="{n + 2}">{cells}</row>')
    return f'<worksheet xmlns="{MAIN}"><sheetData>{"".join(rows)}</sheetData></worksheet>'


def strings_are_plain(data: bytes) -> bool:
    reader = _XlsxReader(zipfile.ZipFile(io.BytesIO(data)), LAYOUT)
    return reader._plain_strings("xl/sharedStrings.xml") is not None


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(
    items=st.lists(SST_ITEMS, min_size=1, max_size=8),
    attrs=st.sampled_from(["", ' count="9" uniqueCount="8"']),
    declaration=st.booleans(),
)
def test_generated_shared_strings_read_as_the_old_reader_reads_them(
    items: list[str], attrs: str, declaration: bool
) -> None:
    """Plain items cut column-wise, rich text and phonetic runs parsed one by one: the same
    strings in the same cells as the old reader gives."""
    data = workbook(_sheet_of_strings(len(items)), _sst(items, attrs, declaration))
    assert strings_are_plain(data)
    assert_same(data)


@pytest.mark.parametrize(
    "sst",
    [
        f'<sst xmlns="{MAIN}"><si><t>a</t></si>\n<si><t>b</t></si></sst>',
        f'<sst xmlns="{MAIN}"><si><t>a</t></si><si/><si><t>b</t></si></sst>',
        f"<sst xmlns='{MAIN}'><si><t>a</t></si><si><t>b</t></si></sst>",
        f'<sst xmlns="{MAIN}"><si><t>a</t></si><!-- c --><si><t>b</t></si></sst>',
        f'<!DOCTYPE sst [<!ENTITY e "x">]><sst xmlns="{MAIN}"><si><t>&e;</t></si><si/></sst>',
        f'<sst xmlns="{MAIN}"><si><t>a&b</t></si><si><t>b</t></si></sst>',
        f'<x:sst xmlns:x="{MAIN}"><x:si><x:t>a</x:t></x:si><x:si><x:t>b</x:t></x:si></x:sst>',
        f'<sst xmlns="{MAIN}"><si><t>a</t></si><si><r><t>b</t><si><t>c</t></si></r></si></sst>',
    ],
)
def test_unusual_shared_strings_are_parsed_as_before(sst: str) -> None:
    """Shared strings not in the plain shape are read (or refused) by the parser as before."""
    data = workbook(_sheet_of_strings(2), sst)
    assert not strings_are_plain(data)
    assert_same(data)


@pytest.mark.parametrize("max_rows", [1, 2, 3])
def test_too_many_rows_are_refused_as_before(max_rows: int) -> None:
    """A plain sheet with more data rows than limits.max_rows is refused the same way, and
    one with as many is read."""
    layout = replace(LAYOUT, limits=replace(LAYOUT.limits, max_rows=max_rows))
    data = workbook(_base_sheet())  # two data rows
    old = _outcome(oracle_xlsx.read_xlsx, data, layout)
    assert old == _outcome(read_xlsx, data, layout)
    assert old[0] == ("refused" if max_rows < 2 else "read")

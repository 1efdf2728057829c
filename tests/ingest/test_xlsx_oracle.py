"""The lxml sheet reader gives exactly what the old pure-Python reader gave.

``oracle_xlsx`` is a frozen copy of batchpay/ingest/xlsx.py from before the change. Every
workbook in the repository (samples/, the hostile corpus, a set built to exercise each
Excel-damage check) and generated ones (random cells, damaged sheet XML) are read by both:
the frames, issues and every other field of the Table must be equal, and where one refuses
the file the other refuses it with the same code and message.
"""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchpay.errors import InputError
from batchpay.ingest.canonical import Table
from batchpay.ingest.xlsx import read_xlsx
from batchpay.layout import Layout, load_layout
from tests.hostile.conftest import layout_with_limits
from tests.hostile.corpus import CASES, Case
from tests.ingest import oracle_xlsx
from tests.ingest.helpers import HEADER, VALID, Cell, Sheet, num, payout_sheet, xlsx_bytes

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = load_layout()


def _outcome(reader: Any, data: bytes, layout: Layout) -> tuple[str, Any]:
    try:
        table: Table = reader(data, layout)
    except InputError as exc:
        return "refused", (exc.code, str(exc), exc.hint, exc.row)
    return "read", (
        table.header,
        table.frame.columns,
        table.frame.rows(),
        [(i.row, i.column, i.code, i.message) for i in table.issues],
        sorted(table.flagged),
        table.numeric_amounts,
        table.blank_rows,
        table.header_row,
        table.title_rows,
        table.sheet,
        table.other_sheets,
    )


def assert_same(data: bytes, layout: Layout = LAYOUT) -> str:
    """Both readers agree on ``data``; which way they went (read or refused)."""
    old = _outcome(oracle_xlsx.read_xlsx, data, layout)
    new = _outcome(read_xlsx, data, layout)
    assert new == old
    return old[0]


def test_the_oracle_reads_the_repository_workbooks_the_same() -> None:
    """samples/ and any workbook checked in under tests/."""
    paths = sorted(ROOT.glob("samples/**/*.xlsx")) + sorted(ROOT.glob("tests/**/*.xlsx"))
    assert paths
    for path in paths:
        assert_same(path.read_bytes())


XLSX_CASES = [c for c in CASES if c.format == "xlsx"]


@pytest.mark.parametrize("case", XLSX_CASES, ids=str)
def test_the_hostile_workbooks_read_the_same(case: Case, tmp_path: Path) -> None:
    """Every XLSX file of the hostile corpus: same refusal or same rows and issues."""
    path = tmp_path / case.name
    case.build(path)
    layout = LAYOUT
    if case.limits:
        layout = load_layout(layout_with_limits(tmp_path, case.limits))
    assert_same(path.read_bytes(), layout)


def _row(**cells: str | Cell) -> dict[str, str | Cell]:
    return {**VALID, **cells}


AMOUNT, IBAN, REF = "Amount", HEADER[0], HEADER[1]
FEATURES: dict[str, bytes] = {
    "plain": xlsx_bytes([payout_sheet([VALID, VALID])]),
    "numbers": xlsx_bytes(
        [
            payout_sheet(
                [
                    _row(**{h: num("12") for h in HEADER}),
                    _row(**{h: num("1.2E+15") for h in HEADER}),
                    _row(**{h: num("45000", s=1) for h in HEADER}),
                    _row(**{h: num("45000", s=2) for h in HEADER}),
                    _row(**{h: num("0.1", s=3) for h in HEADER}),
                ]
            )
        ]
    ),
    "date1904": xlsx_bytes(
        [payout_sheet([_row(**{h: num("45000", s=1) for h in HEADER})])], date1904=True
    ),
    "formulas_errors_bools": xlsx_bytes(
        [
            payout_sheet(
                [
                    _row(**{HEADER[0]: Cell(f="SUM(A1:A2)", v="3")}),
                    _row(**{HEADER[1]: Cell(t="e", v="#REF!")}),
                    _row(**{HEADER[2]: Cell(t="b", v="1"), HEADER[3]: Cell(t="b", v="0")}),
                    _row(**{HEADER[2]: Cell(t="str", f="A1&B1", v="x_x000D_y")}),
                    _row(**{HEADER[4]: Cell(f="")}),
                ]
            )
        ]
    ),
    "shared_strings": xlsx_bytes(
        [
            Sheet(
                rows=[
                    [Cell(t="s", v=str(i)) for i in range(len(HEADER))],
                    [Cell(t="s", v=str(len(HEADER) + i)) for i in range(len(HEADER))],
                ]
            )
        ],
        shared_strings=[*HEADER, *(str(VALID.get(h, "")) for h in HEADER)],
    ),
    "missing_shared_string": xlsx_bytes(
        [Sheet(rows=[list(HEADER), [Cell(t="s", v="999")]])], shared_strings=["a"]
    ),
    "hidden_merged_titles": xlsx_bytes(
        [
            Sheet(
                rows=[
                    ["Payouts for March"],
                    [],
                    list(HEADER),
                    [VALID.get(h, "") for h in HEADER],
                    [],
                    [*[VALID.get(h, "") for h in HEADER], "stray"],
                    [VALID.get(h, "") for h in HEADER],
                ],
                hidden_rows={4},
                merges=["A4:A6", "bad"],
                hidden_columns=["B:C"],
            )
        ]
    ),
    "blank_rows_above_header": xlsx_bytes([payout_sheet(first_row=3)]),
    "escapes_and_entities": xlsx_bytes(
        [
            payout_sheet(
                [
                    _row(**{HEADER[0]: "a_x000D_b", HEADER[1]: "<&>\"'", HEADER[2]: "  x  "}),
                    _row(**{HEADER[3]: Cell(t="inlineStr", inline="_x0041_", f="X()")}),
                ]
            )
        ]
    ),
    "two_sheets": xlsx_bytes([payout_sheet(), payout_sheet(name="Other")]),
    "other_hidden_sheet": xlsx_bytes(
        [payout_sheet(), payout_sheet(name="Other", state="hidden"), Sheet(name="Notes")]
    ),
    "empty": xlsx_bytes([Sheet()]),
}


def _sheet_xml_replaced(old: str, new: str) -> bytes:
    """The plain workbook with its sheet XML edited by text replacement."""
    return _with_sheet_xml(lambda xml: xml.replace(old.encode(), new.encode()), FEATURES["plain"])


def _with_sheet_xml(edit: Any, package: bytes) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(package))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            payload = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                payload = edit(payload)
            target.writestr(info.filename, payload)
    return out.getvalue()


FEATURES |= {
    "no_cell_refs": _sheet_xml_replaced(' r="', ' x="'),
    "no_row_numbers": _sheet_xml_replaced("<row r=", "<row x="),
    "rich_text_and_phonetic": _sheet_xml_replaced(
        "<is><t>", "<is><r><t>a</t></r><rPh><t>phonetic</t></rPh><r><t>b</t></r><t>"
    ),
    "comments_cdata_pi": _sheet_xml_replaced(
        "<is><t>", "<!-- note --><?pi x?><is><t><![CDATA[<x>]]>&#65;&amp;"
    ),
    "prefixed_namespace": _with_sheet_xml(
        lambda xml: (
            xml.replace(b'xmlns="', b'xmlns:x="')
            .replace(b"<", b"<x:")
            .replace(b"<x:/", b"</x:")
            .replace(b"<x:?xml", b"<?xml")
        ),
        FEATURES["plain"],
    ),
    "strict_namespace": _sheet_xml_replaced(
        "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
        "http://purl.oclc.org/ooxml/spreadsheetml/main",
    ),
    "rows_out_of_order": _sheet_xml_replaced('<row r="2"', '<row r="1"'),
    "bad_cell_ref": _sheet_xml_replaced('r="A2"', 'r="12"'),
    "dtd": _sheet_xml_replaced("<worksheet", '<!DOCTYPE worksheet [<!ENTITY e "boom">]><worksheet'),
    "truncated": _with_sheet_xml(lambda xml: xml[: len(xml) // 2], FEATURES["plain"]),
    "not_xml": _with_sheet_xml(lambda xml: b"\x00\xff" + xml, FEATURES["plain"]),
}


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_each_excel_damage_check_reads_the_same(name: str) -> None:
    """Numbers, dates by style, formulas, errors, shared and rich strings, hidden rows and
    columns, merged cells, title rows, namespaces, DTDs and broken XML."""
    assert_same(FEATURES[name])


def test_the_features_exercise_both_outcomes() -> None:
    """The set above is not vacuous: most are read, the broken ones refused."""
    outcomes = {name: assert_same(data) for name, data in FEATURES.items()}
    assert outcomes["numbers"] == "read" and outcomes["dtd"] == "refused"
    assert list(outcomes.values()).count("read") >= 12


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8)
CELLS = st.one_of(
    st.none(),
    TEXT,
    st.builds(num, st.sampled_from(["0", "12", "0012", "1E+20", "45000", "-3.5", ""])),
    st.builds(
        Cell,
        v=st.one_of(st.none(), TEXT),
        t=st.sampled_from([None, "n", "s", "b", "e", "str", "inlineStr", "d"]),
        f=st.one_of(st.none(), TEXT),
        s=st.one_of(st.none(), st.integers(0, 5)),
        inline=st.one_of(st.none(), TEXT),
    ),
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(
    rows=st.lists(st.lists(CELLS, max_size=len(HEADER) + 2), max_size=6),
    header_first=st.booleans(),
    hidden=st.sets(st.integers(1, 8), max_size=3),
    strings=st.lists(TEXT, max_size=4),
)
def test_random_sheets_read_the_same(
    rows: list[list[str | Cell | None]], header_first: bool, hidden: set[int], strings: list[str]
) -> None:
    """Random cells of every kind, under the real header or none."""
    body: list[list[str | Cell | None]] = [list(HEADER), *rows] if header_first else rows
    sheet = Sheet(rows=body, hidden_rows=hidden)
    assert_same(xlsx_bytes([sheet], shared_strings=strings))


@settings(max_examples=150, derandomize=True)
@given(st.integers(min_value=0), st.binary(min_size=1, max_size=64))
def test_damaged_sheet_xml_reads_the_same(seed: int, junk: bytes) -> None:
    """Garbage spliced into the sheet XML: the same refusal (or the same rows)."""

    def splice(xml: bytes) -> bytes:
        at = random.Random(seed).randrange(len(xml))
        return xml[:at] + junk + xml[at:]

    data = _with_sheet_xml(splice, FEATURES["formulas_errors_bools"])
    old = _outcome(oracle_xlsx.read_xlsx, data, LAYOUT)
    new = _outcome(read_xlsx, data, LAYOUT)
    if new != old and old[0] == "read" and any(b > 0x7F for b in junk):
        # expat takes XML 1.0 fifth edition's wider name characters (an attribute named
        # ``t\u1000``), libxml2 the fourth's: such markup, which no spreadsheet writes, is
        # refused as damaged rather than read. Refusing is safe; reading differently is not.
        assert new[0] == "refused" and new[1][0] == "corrupt_xlsx", new
        return
    assert new == old

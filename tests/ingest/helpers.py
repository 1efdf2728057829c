"""Builders for payout files in tests: CSV bytes and hand-written XLSX packages."""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

# A valid individual paid by IBAN, keyed by the headers a user would write.
VALID = {
    "Reference": "INV-2026-0001",
    "Payee ID": "CTR-1",
    "Type": "individual",
    "First Name": "Anna",
    "Last Name": "Müller",
    "Email": "anna@example.de",
    "Phone": "+4915112345678",
    "Date of Birth": "1988-05-12",
    "Nationality": "DE",
    "Address": "Kastanienallee 12",
    "City": "Berlin",
    "Postcode": "10435",
    "Country": "DE",
    "Amount": "1234.50",
    "Currency": "EUR",
    "Payment Method": "iban",
    "IBAN": "DE89370400440532013000",
    "Account Number": "",
    "Sort Code": "",
    "Description": "January invoice",
}
HEADER = list(VALID)


def csv_bytes(
    rows: list[dict[str, str]] | None = None,
    *,
    header: list[str] | None = None,
    sep: str = ",",
    encoding: str = "utf-8",
    newline: str = "\r\n",
) -> bytes:
    """A CSV file of ``rows`` (default: two valid rows) with the given header."""
    header = header or HEADER
    rows = rows if rows is not None else [VALID, {**VALID, "Reference": "INV-2026-0002"}]
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=sep, lineterminator=newline)
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(h, "") for h in header])
    return buffer.getvalue().encode(encoding)


def col_letter(index: int) -> str:
    """Excel column letters of a 0-based column index."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def col_number(letters: str) -> int:
    """1-based column number of Excel column letters."""
    number = 0
    for ch in letters:
        number = number * 26 + ord(ch) - 64
    return number


@dataclass
class Cell:
    """A cell written exactly as given: ``t`` type, ``v`` stored text, ``f`` formula, ``s``."""

    v: str | None = None
    t: str | None = None
    f: str | None = None
    s: int | None = None
    inline: str | None = None

    def xml(self, ref: str) -> str:
        attrs = f' r="{ref}"'
        if self.t:
            attrs += f' t="{self.t}"'
        if self.s is not None:
            attrs += f' s="{self.s}"'
        body = ""
        if self.f is not None:
            body += f"<f>{escape(self.f)}</f>"
        if self.inline is not None:
            body += f"<is><t>{escape(self.inline)}</t></is>"
        if self.v is not None:
            body += f"<v>{escape(self.v)}</v>"
        return f"<c{attrs}>{body}</c>"


def num(text: str, s: int | None = None) -> Cell:
    """A number cell storing ``text`` verbatim."""
    return Cell(v=text, s=s)


@dataclass
class Sheet:
    """One worksheet: rows of cells (str = inline string), optional extras."""

    name: str = "Payouts"
    rows: list[list[str | Cell | None]] = field(default_factory=list)
    state: str | None = None
    hidden_rows: set[int] = field(default_factory=set)
    merges: list[str] = field(default_factory=list)
    hidden_columns: list[str] = field(default_factory=list)  # ranges like "T:T"
    first_row: int = 1

    def xml(self) -> str:
        out = []
        for offset, cells in enumerate(self.rows):
            number = self.first_row + offset
            hidden = ' hidden="1"' if number in self.hidden_rows else ""
            parts = []
            for i, cell in enumerate(cells):
                if cell is None:
                    continue
                ref = f"{col_letter(i)}{number}"
                if isinstance(cell, str):
                    cell = Cell(t="inlineStr", inline=cell)
                parts.append(cell.xml(ref))
            out.append(f'<row r="{number}"{hidden}>{"".join(parts)}</row>')
        merges = ""
        if self.merges:
            inner = "".join(f'<mergeCell ref="{m}"/>' for m in self.merges)
            merges = f'<mergeCells count="{len(self.merges)}">{inner}</mergeCells>'
        cols = ""
        if self.hidden_columns:
            ranges = [r.split(":") for r in self.hidden_columns]
            cols = (
                "<cols>"
                + "".join(
                    f'<col min="{col_number(a)}" max="{col_number(b)}" hidden="1"/>'
                    for a, b in ranges
                )
                + "</cols>"
            )
        return (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            f"{cols}<sheetData>{''.join(out)}</sheetData>{merges}</worksheet>"
        )


MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG = "http://schemas.openxmlformats.org/package/2006/relationships"

# cellXfs: 0 = General, 1 = a built-in date format (14), 2 = a custom date format, 3 = text
STYLES = (
    f'<?xml version="1.0" encoding="UTF-8"?><styleSheet xmlns="{MAIN}">'
    '<numFmts count="1"><numFmt numFmtId="164" formatCode="dd/mm/yyyy;@"/></numFmts>'
    '<cellXfs count="4"><xf numFmtId="0"/><xf numFmtId="14"/><xf numFmtId="164"/>'
    '<xf numFmtId="49"/></cellXfs></styleSheet>'
)


def xlsx_bytes(
    sheets: list[Sheet],
    *,
    shared_strings: list[str] | None = None,
    styles: str | None = STYLES,
    extra: dict[str, bytes] | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
    date1904: bool = False,
) -> bytes:
    """A minimal but complete .xlsx package holding ``sheets``."""
    files: dict[str, str | bytes] = {}
    files["[Content_Types].xml"] = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="xml" ContentType="application/xml"/></Types>'
    )
    files["_rels/.rels"] = (
        f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{PKG}">'
        f'<Relationship Id="rId1" Type="{REL}/officeDocument" Target="xl/workbook.xml"/>'
        "</Relationships>"
    )
    sheet_entries = []
    rels = []
    for i, sheet in enumerate(sheets, start=1):
        state = f' state="{sheet.state}"' if sheet.state else ""
        sheet_entries.append(
            f'<sheet name="{escape(sheet.name)}" sheetId="{i}"{state} r:id="rId{i}"/>'
        )
        rels.append(
            f'<Relationship Id="rId{i}" Type="{REL}/worksheet" Target="worksheets/sheet{i}.xml"/>'
        )
        files[f"xl/worksheets/sheet{i}.xml"] = sheet.xml()
    n = len(sheets)
    if shared_strings is not None:
        rels.append(
            f'<Relationship Id="rId{n + 1}" Type="{REL}/sharedStrings" Target="sharedStrings.xml"/>'
        )
        items = "".join(f"<si><t>{escape(s)}</t></si>" for s in shared_strings)
        files["xl/sharedStrings.xml"] = (
            f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{MAIN}">{items}</sst>'
        )
    if styles is not None:
        rels.append(f'<Relationship Id="rId{n + 2}" Type="{REL}/styles" Target="styles.xml"/>')
        files["xl/styles.xml"] = styles
    files["xl/workbook.xml"] = (
        f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{MAIN}" xmlns:r="{REL}">'
        + ('<workbookPr date1904="1"/>' if date1904 else "")
        + f"<sheets>{''.join(sheet_entries)}</sheets></workbook>"
    )
    files["xl/_rels/workbook.xml.rels"] = (
        f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{PKG}">'
        f"{''.join(rels)}</Relationships>"
    )
    files.update(extra or {})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def payout_sheet(rows: list[dict[str, str | Cell]] | None = None, **kwargs: object) -> Sheet:
    """A sheet with the VALID header and ``rows`` (default: one valid row) as inline strings."""
    rows = rows if rows is not None else [dict(VALID)]
    data: list[list[str | Cell | None]] = [list(HEADER)]
    for row in rows:
        data.append([row.get(h, "") for h in HEADER])
    return Sheet(rows=data, **kwargs)  # type: ignore[arg-type]

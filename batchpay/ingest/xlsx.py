"""XLSX payout files, read from the sheet XML itself, with the damage Excel does reported.

XLSX is read from the sheet XML itself (zipfile + defusedxml, streaming) rather than through a
spreadsheet library, because those convert numbers to floats and lose the stored text. Numbers
in text columns, date serials, formulas, error cells, merged cells, hidden rows and columns are
reported as :class:`~batchpay.errors.RowIssue`; zip bombs and DTDs are refused.

A sheet (and a shared-strings part) in the plain shape most programs write is cut column-wise
by :mod:`batchpay.ingest.xlsx_plain` instead of parsed, with the same checks; anything else is
read by the XML parser (lxml) as before.
"""

from __future__ import annotations

import io
import logging
import posixpath
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from xml.sax.saxutils import quoteattr

import polars as pl
from defusedxml import DefusedXmlException, DTDForbidden
from defusedxml.ElementTree import fromstring as defused_fromstring
from defusedxml.ElementTree import iterparse
from lxml import etree

from batchpay.errors import InputError, RowIssue
from batchpay.ingest.canonical import ROW, SCIENTIFIC, Table, column_letter, too_many_rows
from batchpay.ingest.sniff import Budget, guard_zip
from batchpay.ingest.structure import HEADER_SEARCH_ROWS, names_header
from batchpay.ingest.xlsx_plain import NotPlain, PlainSheet, cut_sheet, cut_strings
from batchpay.layout import Layout

__all__ = ["read_xlsx"]

log = logging.getLogger(__name__)

_TEXT_KINDS = frozenset({"digits", "identifier"})
# Excel's built-in number formats that display dates or times.
_DATE_FORMAT_IDS = frozenset({*range(14, 23), *range(27, 37), *range(45, 48), *range(50, 59)})

_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_STRICT_REL_NS = "http://purl.oclc.org/ooxml/officeDocument/relationships"

# What the zip and XML layers raise on a damaged or hostile package.
_BROKEN_PACKAGE = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    DefusedXmlException,
    SyntaxError,  # xml.etree.ElementTree.ParseError
    KeyError,
    ValueError,  # UnicodeError and zipfile's own checks included
    IndexError,
    OSError,
    EOFError,
    NotImplementedError,  # unsupported zip version or compression method
    RuntimeError,  # an encrypted zip member
    OverflowError,
    LookupError,  # an XML part declaring an encoding Python does not know (expat)
    struct.error,
    zlib.error,
    etree.LxmlError,  # the sheet's parser (lxml); its syntax errors are SyntaxErrors too
)

# The elements the sheet parser stops at; the rest of the sheet is skipped in C.
_SHEET_TAGS = ("{*}row", "{*}col", "{*}mergeCell")
_CELL_TAG = "{*}c"
_INNER_SHEET_TAGS = frozenset({"row", "col", "mergeCell"})
_LOCAL_NAMES: dict[str, str] = {}


def _local_name(tag: Any) -> str:
    """The local name of an lxml tag (``{ns}c`` -> ``c``), cached: a sheet repeats a few."""
    name = _LOCAL_NAMES.get(tag)
    if name is None:
        if not isinstance(tag, str):  # a comment or processing instruction
            return ""
        name = _LOCAL_NAMES[tag] = tag.rsplit("}", 1)[-1]
    return name


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def read_xlsx(data: bytes, layout: Layout) -> Table:
    """The payout sheet of an XLSX workbook's bytes as a raw :class:`Table`."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except _BROKEN_PACKAGE as exc:
        raise _corrupt("it cannot be unzipped") from exc
    guard_zip(infos, len(data), layout)
    reader = _XlsxReader(archive, layout)
    try:
        return reader.read()
    except InputError:
        raise
    except DefusedXmlException as exc:
        raise _corrupt("its XML declares entities (a DTD), which batchpay never expands") from exc
    except _BROKEN_PACKAGE as exc:  # the cause stays chained for --debug
        raise _corrupt("its contents cannot be read") from exc


def _corrupt(detail: str) -> InputError:
    return InputError(
        f"the workbook is damaged or not an Excel .xlsx file: {detail}",
        code="corrupt_xlsx",
        hint="open it in Excel and save it again as .xlsx, or export CSV UTF-8",
    )


@dataclass
class _Sheet:
    name: str
    path: str
    hidden: bool
    worksheet: bool


class _XlsxReader:
    def __init__(self, archive: zipfile.ZipFile, layout: Layout) -> None:
        self.archive = archive
        self.layout = layout
        self.names = set(archive.namelist())
        self.budget = Budget(layout.limits.max_xlsx_uncompressed_bytes)
        self.date1904 = False  # the workbook counts days from 1904 (old Mac Excel)

    def _events(self, name: str, events: tuple[str, ...] = ("end",)) -> Iterator[tuple[str, Any]]:
        with self.budget.open(self.archive, name) as stream:
            yield from iterparse(stream, events=events, forbid_dtd=True)

    def _sheet_elements(self, name: str) -> Iterator[Any]:
        """The sheet's rows, ``col`` and ``mergeCell`` elements, parsed by lxml (libxml2, C).

        A sheet is most of a workbook: its XML is parsed in C and only these elements reach
        Python. Like defusedxml, a DTD is refused (entities are never expanded or fetched);
        rows are dropped once read, so memory stays flat.
        """
        with self.budget.open(self.archive, name) as stream:
            events = etree.iterparse(
                stream,
                events=("end",),
                tag=_SHEET_TAGS,
                resolve_entities=False,
                load_dtd=False,
                no_network=True,
                remove_comments=True,
                remove_pis=True,
            )
            checked = False
            for _, elem in events:
                if not checked:
                    _refuse_dtd(elem.getroottree())
                    checked = True
                yield elem
                if _local_name(elem.tag) == "row":
                    elem.clear()
                    while elem.getprevious() is not None:
                        del elem.getparent()[0]
            if not checked and events.root is not None:
                _refuse_dtd(events.root.getroottree())

    def _rels(self, part: str) -> dict[str, tuple[str, str]]:
        """Relationship id -> (type suffix, target path) for an OPC part."""
        folder, base = posixpath.split(part)
        rels_name = posixpath.join(folder, "_rels", base + ".rels")
        if rels_name not in self.names:
            return {}
        out: dict[str, tuple[str, str]] = {}
        for _, elem in self._events(rels_name):
            if _local(elem.tag) == "Relationship" and elem.get("TargetMode") != "External":
                target = elem.get("Target", "")
                path = (
                    target.lstrip("/")
                    if target.startswith("/")
                    else posixpath.normpath(posixpath.join(folder, target))
                )
                out[elem.get("Id", "")] = (elem.get("Type", "").rsplit("/", 1)[-1], path)
        return out

    def read(self) -> Table:
        root_rels = self._rels("")
        workbook = next(
            (p for t, p in root_rels.values() if t == "officeDocument"), "xl/workbook.xml"
        )
        if workbook not in self.names:
            raise _corrupt("it has no workbook inside")
        sheets = self._sheets(workbook)
        chosen = self._choose(sheets)
        wb_rels = self._rels(workbook)
        shared = next((p for t, p in wb_rels.values() if t == "sharedStrings"), None)
        styles = next((p for t, p in wb_rels.values() if t == "styles"), None)
        strings = self._shared_strings(shared) if shared in self.names else []
        date_styles = self._date_styles(styles) if styles in self.names else set()
        if self.layout.file.sheet is None:
            self._refuse_other_payout_sheets(sheets, chosen, strings)
        plain = _PlainSheetParser(self, chosen.path, strings, date_styles).parse_plain()
        table = plain or _SheetParser(self, chosen.path, strings, date_styles).parse()
        table.sheet = chosen.name
        table.other_sheets = [s.name for s in sheets if s is not chosen]
        return table

    def _refuse_other_payout_sheets(
        self, sheets: list[_Sheet], chosen: _Sheet, strings: list[str]
    ) -> None:
        """Refuse a workbook whose other visible sheets also hold payouts.

        Paying the first sheet would silently leave the others unpaid. Sheets with other
        headers (notes, lookups) and hidden sheets are fine.
        """
        required = set(self.layout.always_required)
        payout_sheets = [chosen.name]
        for sheet in sheets:
            if sheet is chosen or sheet.hidden or not sheet.worksheet:
                continue
            mapped = {self.layout.match_header(h) for h in self._first_row(sheet.path, strings)}
            if required <= mapped:
                payout_sheets.append(sheet.name)
        if len(payout_sheets) > 1:
            raise InputError(
                f"the workbook has payout rows on {len(payout_sheets)} sheets "
                f"({' and '.join(repr(n) for n in payout_sheets)}); batchpay pays one sheet per "
                "run and would leave the others unpaid",
                code="several_sheets",
                hint="put all payouts on one sheet, or name the sheet to pay in the layout "
                "(file.sheet) and pay each sheet as its own run",
            )

    def _first_row(self, path: str, strings: list[str]) -> list[str]:
        """The text of a sheet's first row (its headers, if it is a payout sheet)."""
        texts: list[str] = []
        for event, elem in self._events(path, ("start", "end")):
            tag = _local(elem.tag)
            if event == "end" and tag == "row":
                break
            if event != "end" or tag != "c":
                continue
            kind = elem.get("t", "n")
            value = next((c.text or "" for c in elem if _local(c.tag) == "v"), "")
            if kind == "inlineStr":
                value = next((_rich_text(c) for c in elem if _local(c.tag) == "is"), "")
            elif kind == "s" and value.strip().isdigit() and int(value) < len(strings):
                value = strings[int(value)]
            texts.append(value)
            elem.clear()
        return texts

    def _sheets(self, workbook: str) -> list[_Sheet]:
        rels = self._rels(workbook)
        sheets: list[_Sheet] = []
        for _, elem in self._events(workbook):
            if _local(elem.tag) == "workbookPr":
                self.date1904 = elem.get("date1904") in ("1", "true")
            if _local(elem.tag) != "sheet":
                continue
            rid = elem.get(f"{{{_REL_NS}}}id") or elem.get(f"{{{_STRICT_REL_NS}}}id") or ""
            kind, path = rels.get(rid, ("", ""))
            sheets.append(
                _Sheet(
                    name=elem.get("name", ""),
                    path=path,
                    hidden=elem.get("state", "visible") != "visible",
                    worksheet=kind == "worksheet" and path in self.names,
                )
            )
        return sheets

    def _choose(self, sheets: list[_Sheet]) -> _Sheet:
        wanted = self.layout.file.sheet
        names = ", ".join(s.name for s in sheets)
        if wanted is not None:
            match = next((s for s in sheets if s.name == wanted), None) or next(
                (s for s in sheets if s.name.casefold() == wanted.casefold()), None
            )
            if match is None:
                raise InputError(
                    f"the workbook has no sheet named {wanted!r} (sheets: {names})",
                    code="sheet_not_found",
                    hint="fix file.sheet in the layout, or leave it empty for the first sheet",
                )
            if match.hidden:
                raise InputError(
                    f"sheet {match.name!r} is hidden in Excel",
                    code="sheet_hidden",
                    hint="unhide the sheet and check its contents before paying from it",
                )
            if not match.worksheet:
                raise InputError(
                    f"sheet {match.name!r} is not a worksheet (a chart or macro sheet)",
                    code="sheet_not_found",
                    hint="name the sheet that holds the payout rows in the layout",
                )
            return match
        for sheet in sheets:
            if not sheet.hidden and sheet.worksheet:
                return sheet
        raise InputError(
            f"the workbook has no visible worksheet (sheets: {names or 'none'})",
            code="no_visible_sheet",
            hint="unhide the sheet with the payout rows, or name it in the layout",
        )

    def _shared_strings(self, part: str) -> list[str]:
        plain = self._plain_strings(part)
        if plain is not None:
            return plain
        strings: list[str] = []
        for _, elem in self._events(part):
            if _local(elem.tag) == "si":
                strings.append(_rich_text(elem))
                elem.clear()
        return strings

    def _plain_strings(self, part: str) -> list[str] | None:
        """The shared strings of a plain part cut column-wise (None: it is not plain); items
        in other shapes are parsed as :meth:`_shared_strings` parses them (defusedxml)."""
        budget = self.budget.left
        try:
            with self.budget.open(self.archive, part) as stream:
                cut = cut_strings(stream)
            strings = [_unescape_ooxml(t) if "_x" in t else t for t in cut.texts]
            # parsed even with no items to read: the declaration and root tag must be XML
            items = "".join(f"<si>{xml}</si>" for xml in cut.others.values())
            root = defused_fromstring(cut.prologue + f"{items}</sst>".encode(), forbid_dtd=True)
            if cut.others:
                if root.text or len(root) != len(cut.others):
                    raise NotPlain("items that are not one element each")
                for at, elem in zip(cut.others, root, strict=True):
                    if _local(elem.tag) != "si" or elem.tail:
                        raise NotPlain("items that are not one element each")
                    if any(_local(e.tag) == "si" for e in elem.iter() if e is not elem):
                        raise NotPlain("an item inside an item")  # the parse reads both
                    strings[at] = _rich_text(elem)
            return strings
        except (*_PLAIN_FAILED, DefusedXmlException, SyntaxError, InputError) as exc:
            if isinstance(exc, InputError) and exc.code != "zip_bomb":
                raise
            log.debug("shared strings %s are read by the XML parser: %r", part, exc)
            self.budget.left = budget  # the part is read again from its start
            return None

    def _date_styles(self, part: str) -> set[int]:
        """Indexes of cell styles (``s=``) whose number format shows a date or time."""
        custom: dict[int, str] = {}
        xf_formats: list[int] = []
        in_cell_xfs = False
        for event, elem in self._events(part, ("start", "end")):
            tag = _local(elem.tag)
            if tag == "numFmt" and event == "end":
                custom[int(elem.get("numFmtId", "0"))] = elem.get("formatCode", "")
            elif tag == "cellXfs":
                in_cell_xfs = event == "start"
            elif tag == "xf" and event == "end" and in_cell_xfs:
                xf_formats.append(int(elem.get("numFmtId", "0")))
        return {
            index
            for index, fmt in enumerate(xf_formats)
            if (fmt in custom and _is_date_format(custom[fmt]))
            or (fmt not in custom and fmt in _DATE_FORMAT_IDS)
        }


def _refuse_dtd(tree: Any) -> None:
    info = tree.docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise DTDForbidden(info.root_name, info.system_url, info.public_id)


def _is_date_format(code: str) -> bool:
    """Whether an Excel number format code displays a date or time."""
    stripped = re.sub(r'"[^"]*"|\[[^\]]*\]|\\.|_.|\*.', "", code)
    return re.search(r"[dmyhs]", stripped, re.IGNORECASE) is not None and not re.fullmatch(
        r"(?i)general", stripped.strip()
    )


def _line_text(cells: dict[int, str]) -> str:
    return " ".join(cells[c].strip() for c in sorted(cells) if cells[c].strip())


def _rich_text(elem: Any) -> str:
    """Text of a shared or inline string: its <t>, or its runs' <t>, phonetic runs excluded."""
    if len(elem) == 1:  # the usual <is><t>text</t></is> or <si><t>text</t></si>
        only = elem[0]
        if _local_name(only.tag) == "t":
            return _unescape_ooxml(only.text or "")
    parts: list[str] = []
    for child in elem:
        tag = _local_name(child.tag)
        if tag == "t":
            parts.append(child.text or "")
        elif tag == "r":
            parts.extend(t.text or "" for t in child if _local_name(t.tag) == "t")
    return _unescape_ooxml("".join(parts))


def _unescape_ooxml(text: str) -> str:
    if "_x" not in text:
        return text
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), text)


def _column_index(ref: str) -> int:
    """0-based column of a cell reference like ``AB12``."""
    index = 0
    for ch in ref:
        if "A" <= ch <= "Z":
            index = index * 26 + (ord(ch) - 64)
        elif "a" <= ch <= "z":
            index = index * 26 + (ord(ch) - 96)
        else:
            break
    if index == 0 or index > 16384:
        raise ValueError(f"bad cell reference {ref!r}")
    return index - 1


def _serial_to_date(serial: str, date1904: bool = False) -> str | None:
    """The calendar date an Excel serial shows, or None."""
    try:
        days = float(serial)
    except ValueError:
        return None
    if not 1 <= days < 2958466:
        return None
    if date1904:
        return (date(1904, 1, 1) + timedelta(days=int(days))).isoformat()
    # Excel counts 1900-02-29, which did not exist; serials from 61 on are one day ahead.
    base = date(1899, 12, 30) if days >= 61 else date(1899, 12, 31)
    return (base + timedelta(days=int(days))).isoformat()


class _SheetParser:
    """Streams one worksheet's XML into a :class:`Table`."""

    def __init__(
        self, reader: _XlsxReader, path: str, strings: list[str], date_styles: set[int]
    ) -> None:
        self.reader = reader
        self.path = path
        self.strings = strings
        self.date_styles = date_styles
        self.limits = reader.layout.limits
        self.header: list[str] | None = None
        self.specs: dict[int, str] = {}  # column index -> canonical name
        self.columns: dict[int, list[str]] = {}
        self.row_numbers: list[int] = []
        self.issues: list[RowIssue] = []
        self.flagged: set[tuple[int, int]] = set()
        self.numeric_amounts: dict[int, str] = {}
        self.hidden_rows: list[int] = []
        self.hidden_columns: list[tuple[int, int]] = []  # 0-based inclusive ranges
        self.merges: list[str] = []
        self.blank_rows = 0
        self.last_row = 0
        self.header_row = 1
        self.title_rows: list[tuple[int, str]] = []
        self.first_cells: dict[int, str] = {}
        # a header row that does not name every required column, and the rows read below it
        # (within the first rows): set aside as titles if a later row names them all
        self.tentative: list[tuple[int, str]] | None = None
        self._lists: list[list[str]] = []
        self._letters: dict[str, int] = {}
        self.row_number = 0

    def parse(self) -> Table:
        for elem in self.reader._sheet_elements(self.path):
            self._element(elem)
        return self._table()

    def _element(self, elem: Any) -> None:
        """One ``row``, ``col`` or ``mergeCell`` element of the sheet, in document order."""
        columns = self._letters  # a reference's column letters -> its index, cached
        cell = self._cell
        local = _LOCAL_NAMES
        tag = _local_name(elem.tag)
        if tag == "row":
            explicit = elem.get("r")
            row_number = int(explicit) if explicit else self.row_number + 1
            self.row_number = row_number
            hidden = elem.get("hidden") in ("1", "true")
            cells: dict[int, str] = {}
            next_col = 0
            header_known = self.header is not None
            for c in elem.iterchildren(_CELL_TAG):
                ref = c.get("r")
                if ref:
                    letters = ref.rstrip("0123456789")
                    col = columns.get(letters, -1)
                    if col < 0:
                        col = _column_index(ref)
                        if letters:
                            columns[letters] = col
                else:
                    col = next_col
                next_col = col + 1
                # the text cells most sheets are made of, without the checks that cannot
                # apply to them (the same result as _cell, which handles everything else)
                if header_known and c.get("t") == "inlineStr":
                    n = len(c)
                    if n == 0:
                        continue
                    if n == 1:
                        child = c[0]
                        tag = child.tag
                        if (local.get(tag) or _local_name(tag)) == "is" and len(child) == 1:
                            t = child[0]
                            tag = t.tag
                            if (local.get(tag) or _local_name(tag)) == "t":
                                text = t.text
                                if text:
                                    if "_x" in text:  # _rich_text's and _cell's unescape
                                        text = _unescape_ooxml(_unescape_ooxml(text))
                                    if text:
                                        cells[col] = text
                                continue
                value = cell(c, row_number, col)
                if value:
                    cells[col] = value
            self._row(row_number, cells, hidden)
        elif tag == "mergeCell":
            self.merges.append(elem.get("ref", ""))
        elif tag == "col" and elem.get("hidden") in ("1", "true"):
            first, last = int(elem.get("min", "1")), int(elem.get("max", "1"))
            self.hidden_columns.append((first - 1, last - 1))

    def _table(
        self, bulk: dict[int, pl.Series] | None = None, rows: pl.Series | None = None
    ) -> Table:
        """The table of the rows read (and of ``bulk``, columns read column-wise after them)."""
        if self.header is None and self.first_cells:
            # only short lines of text, no header below them: the first is the header, so the
            # refusal names its missing columns (with any other sheet that may hold payouts)
            width = max(self.first_cells) + 1
            self.header = [self.first_cells.get(i, "").strip() for i in range(width)]
            self.header_row, self.title_rows = self.title_rows[0][0], []
        if self.header is None:
            raise InputError(
                "the sheet is empty", code="empty", hint="check the sheet named in the layout"
            )
        self._merged_cells()
        width = len(self.header)
        frame = pl.DataFrame(
            {f"c{i}": self.columns.get(i, []) for i in range(width)},
            schema={f"c{i}": pl.String for i in range(width)},
        ).with_columns(pl.Series(ROW, self.row_numbers, dtype=pl.Int64))
        if bulk is not None and rows is not None:
            more = pl.DataFrame({f"c{i}": bulk[i] for i in range(width)}).with_columns(
                rows.alias(ROW).cast(pl.Int64)
            )
            frame = pl.concat([frame, more])
        for row in self.hidden_rows:
            self.issues.append(
                RowIssue(
                    row,
                    None,
                    "hidden_row",
                    "this row is hidden in Excel; unhide it and check it, or delete it",
                )
            )
        return Table(
            header=self.header,
            frame=frame,
            issues=self.issues,
            flagged=self.flagged,
            numeric_amounts=self.numeric_amounts,
            blank_rows=self.blank_rows,
            header_row=self.header_row,
            title_rows=self.title_rows,
        )

    def _row(self, number: int, cells: dict[int, str], hidden: bool) -> None:
        if number <= self.last_row:
            raise ValueError(f"row {number} comes after row {self.last_row}")
        self.last_row = number
        if self.header is None:
            if not any(v.strip() for v in cells.values()):
                return
            layout = self.reader.layout
            filled = [v.strip() for v in cells.values() if v.strip()]
            if (
                number < HEADER_SEARCH_ROWS
                and len(filled) <= 2
                and not any(layout.match_header(v) for v in filled)
            ):
                # a title above the header (batchpay.ingest.structure decides what to do)
                text = " ".join(cells[c].strip() for c in sorted(cells) if cells[c].strip())
                self.title_rows.append((number, text))
                self.first_cells = self.first_cells or dict(cells)
                return
            if number != 1 and not self.title_rows:
                raise InputError(
                    f"rows 1 to {number - 1} are blank; the first row must hold the headers",
                    code="no_header",
                    row=1,
                    hint="delete the blank rows above the headers",
                )
            width = max(cells) + 1
            self.header = [cells.get(i, "").strip() for i in range(width)]
            self.header_row = number
            self.specs = {
                i: name
                for i, h in enumerate(self.header)
                if (name := self.reader.layout.match_header(h)) is not None
            }
            if not names_header(self.header, layout):
                self.tentative = [(number, _line_text(cells))]
            return
        if not any(v.strip() for v in cells.values()):
            self.blank_rows += 1
            return
        if self.tentative is not None:
            if number >= HEADER_SEARCH_ROWS:
                self.tentative = None
            elif names_header(cells.values(), self.reader.layout):
                self._header_below_titles(number, cells)
                return
            else:
                self.tentative.append((number, _line_text(cells)))
        width = len(self.header)
        for col in sorted(cells) if self.hidden_columns else ():
            if cells[col].strip() and any(a <= col <= b for a, b in self.hidden_columns):
                self._issue(
                    number,
                    col,
                    "hidden_column",
                    "is in a column hidden in Excel; unhide the column and check it",
                )
        beyond = (
            sorted(c for c in cells if c >= width and cells[c].strip())
            if max(cells) >= width
            else ()
        )
        for col in beyond:
            self._issue(
                number,
                col,
                "no_header",
                f"has a value in column {column_letter(col)}, which has no header; "
                "a row may have shifted",
                label=f"column {column_letter(col)}",
            )
        if len(self.row_numbers) >= self.limits.max_rows:
            raise too_many_rows(self.limits.max_rows)
        get = cells.get
        for i, column in enumerate(self._column_lists(width)):
            column.append(get(i, ""))
        self.row_numbers.append(number)
        if hidden:
            self.hidden_rows.append(number)

    def _header_below_titles(self, number: int, cells: dict[int, str]) -> None:
        """A row of the first ones names every required column: it is the header, and the
        rows read so far (the header taken from a title block, the rows below it) are titles;
        what was read from them is forgotten (batchpay.ingest.structure decides on them)."""
        assert self.tentative is not None
        self.title_rows += [(n, text) for n, text in self.tentative if text]
        self.tentative = None
        self.columns, self._lists, self.row_numbers = {}, [], []
        self.issues, self.flagged, self.numeric_amounts = [], set(), {}
        self.hidden_rows, self.blank_rows = [], 0
        self.header = [cells.get(i, "").strip() for i in range(max(cells) + 1)]
        self.header_row = number
        self.specs = {
            i: name
            for i, h in enumerate(self.header)
            if (name := self.reader.layout.match_header(h)) is not None
        }

    def _column_lists(self, width: int) -> list[list[str]]:
        if len(self._lists) != width:
            self._lists = [self.columns.setdefault(i, []) for i in range(width)]
        return self._lists

    def _issue(
        self, row: int, col: int, code: str, message: str, *, label: str | None = None
    ) -> None:
        if (row, col) in self.flagged:
            return
        self.flagged.add((row, col))
        if label is None and self.header is not None and col < len(self.header):
            label = self.header[col] or f"column {column_letter(col)}"
        self.issues.append(RowIssue(row, label, code, message))

    def _cell(self, elem: Any, row: int, col: int) -> str:
        kind, raw, formula, value = self._cell_value(elem)
        if self.header is not None:
            self._cell_checks(row, col, kind, raw, formula, value, elem.get("s"))
        return value

    def _cell_value(self, elem: Any) -> tuple[str, str | None, str | None, str]:
        """A cell's type, stored text (None without <v> or <is>), formula and value."""
        kind = elem.get("t", "n")
        raw: str | None = None
        formula: str | None = None
        for child in elem:
            tag = _local_name(child.tag)
            if tag == "v":
                raw = child.text or ""
            elif tag == "f":
                formula = child.text or "(shared formula)"
            elif tag == "is":
                raw = _rich_text(child)
        if kind == "s" and raw is not None:
            index = int(raw)
            if not 0 <= index < len(self.strings):
                raise ValueError(f"shared string {index} does not exist")
            value = self.strings[index]
        elif kind == "b" and raw is not None:
            value = "TRUE" if raw.strip() == "1" else "FALSE"
        else:
            value = raw or ""
            if kind in ("str", "inlineStr"):
                value = _unescape_ooxml(value)
        return kind, raw, formula, value

    def _cell_checks(
        self,
        row: int,
        col: int,
        kind: str,
        raw: str | None,
        formula: str | None,
        value: str,
        style: str | None,
    ) -> None:
        """The Excel damage a cell under the header shows: formulas, errors, numbers."""
        canonical = self.specs.get(col)
        if formula is not None:
            shown = f", showing {value}" if value else ""
            self._issue(
                row,
                col,
                "formula",
                f"contains a formula (={formula[:60]}{shown}); batchpay pays typed values "
                "only — copy the column and paste it back as values",
            )
        if kind == "e":
            self._issue(row, col, "excel_error", f"contains the Excel error {value}; fix the cell")
            return
        if kind != "n" or raw is None or raw == "" or canonical is None:
            return
        spec = self.reader.layout.column(canonical)
        is_date_style = style is not None and style.isdigit() and int(style) in self.date_styles
        if spec.kind == "date" or is_date_style:
            as_date = _serial_to_date(value, self.reader.date1904)
            seen = f" = {as_date}" if as_date else ""
            self._issue(
                row,
                col,
                "date_serial",
                f"is an Excel date serial ({value}{seen}); format the column as Text and type "
                "the date as YYYY-MM-DD",
            )
        elif spec.kind in _TEXT_KINDS:
            if re.fullmatch(SCIENTIFIC, value) or "E" in value.upper():
                message = (
                    f"is stored as a number in scientific notation ({value}); the real digits "
                    "are lost — format the column as Text and type the values again"
                )
            else:
                message = (
                    f"is stored as a number ({value}); Excel may have dropped leading zeros or "
                    "rounded it — format the column as Text and type the values again"
                )
            self._issue(row, col, "stored_as_number", message)
        elif spec.kind == "amount":
            self.numeric_amounts[row] = value

    def _merged_cells(self) -> None:
        for ref in self.merges:
            match = re.fullmatch(r"([A-Za-z]{1,3})([0-9]+):([A-Za-z]{1,3})([0-9]+)", ref)
            if not match:
                continue
            col = _column_index(match.group(1))
            first, last = int(match.group(2)), int(match.group(4))
            for row in range(first, min(last, first + self.limits.max_rows) + 1):
                self._issue(
                    row,
                    col,
                    "merged_cells",
                    f"is part of merged cells {ref.upper()}; merged cells hide values — "
                    "unmerge them and fill every cell",
                )


# A sheet above this is read by the XML parser alone: cut column-wise it would sit in memory
# several times over (the XML, its text, the cells).
_PLAIN_MAX_BYTES = 512 * 1024 * 1024
_PLAIN_FAILED = (
    NotPlain,
    etree.LxmlError,
    pl.exceptions.PolarsError,
    ValueError,
    IndexError,
    OverflowError,
    KeyError,
)


class _PlainSheetParser(_SheetParser):
    """A plain sheet (see :mod:`batchpay.ingest.xlsx_plain`) read column-wise.

    The rows up to the header (and the title rows around it) go through the XML parser one by
    one, exactly as :class:`_SheetParser` reads them; the rows below are checked on whole
    columns with the same rules. :meth:`parse_plain` answers None for a sheet that is not
    plain, and the caller reads it again with :class:`_SheetParser` from the start.
    """

    def parse_plain(self) -> Table | None:
        reader = self.reader
        try:
            size = reader.archive.getinfo(self.path).file_size
        except KeyError:
            return None
        if size > _PLAIN_MAX_BYTES:
            return None
        budget = reader.budget.left
        try:
            with reader.budget.open(reader.archive, self.path) as stream:
                sheet = cut_sheet(stream)
            return self._read(sheet)
        except (*_PLAIN_FAILED, InputError) as exc:
            if isinstance(exc, InputError) and exc.code != "zip_bomb":
                raise  # what the rows say, in the order the XML parser would have said it
            log.debug("sheet %s is read by the XML parser: %r", self.path, exc)
            reader.budget.left = budget  # the sheet is read again from its start
            return None

    def _read(self, sheet: PlainSheet) -> Table:
        parser = etree.XMLPullParser(
            events=("start", "end"),
            tag=(*_SHEET_TAGS, "{*}sheetData"),
            resolve_entities=False,
            load_dtd=False,
            no_network=True,
            remove_comments=True,
            remove_pis=True,
        )
        declared: dict[str | None, str] = {}
        parser.feed(sheet.prefix)
        self._drain(parser, declared, rows=False)
        if not declared or not sheet.prefixes <= set(declared):
            raise NotPlain("a namespace prefix that is not declared")
        # a:x and b:x are one attribute twice when a and b name one namespace (not XML)
        if len({declared[p] for p in sheet.prefixes}) != len(sheet.prefixes):
            raise NotPlain("two prefixes of one namespace on the rows")
        elements, last = sheet.elements, sheet.last
        done = -1  # the last element read by the XML parser
        while done < last and (self.header is None or self.tentative is not None):
            done += 1
            if done >= len(elements):
                raise NotPlain("no header in the first rows")
            xml = elements[done]
            parser.feed(xml + "</row>" if done < last else xml)
            self._drain(parser, declared, rows=True)
        hidden_columns = list(self.hidden_columns)  # <col> after the rows change nothing
        parser.feed(sheet.suffix)
        self._drain(parser, declared, rows=False)
        parser.close()
        if done == last:
            return self._table()
        return self._bulk(sheet, done, declared, hidden_columns)

    def _drain(self, parser: Any, declared: dict[str | None, str], *, rows: bool) -> None:
        for event, item in parser.read_events():
            tag = _local_name(item.tag)
            if tag == "sheetData":
                if event == "start":  # the namespaces the cells are read under
                    declared.update(item.nsmap)
                continue
            if event == "start":
                continue
            if tag == "row":
                if not rows:
                    raise NotPlain("a row outside sheetData")
                self._element(item)
                item.clear()
                while item.getprevious() is not None:
                    del item.getparent()[0]
            else:
                self._element(item)

    def _bulk(
        self,
        sheet: PlainSheet,
        done: int,
        declared: dict[str | None, str],
        hidden_columns: list[tuple[int, int]],
    ) -> Table:
        """The rows after element ``done``, on whole columns."""
        assert self.header is not None
        width = len(self.header)
        # rows and cells come in element order: those after ``done`` are a slice of each
        rows = sheet.rows.slice(sheet.rows["e"].search_sorted(done + 1, side="left"))
        if rows.height and rows["number"][0] <= self.last_row:
            raise NotPlain("rows out of order")
        cells = sheet.cells.slice(sheet.cells["i"].search_sorted(done + 1, side="left"))
        numbers = pl.Series([None] * (sheet.last + 1), dtype=pl.Int64)
        with_cells = rows.filter(pl.col("i").is_not_null())
        numbers = numbers.scatter(with_cells["i"], with_cells["number"])
        cells = cells.with_columns(row=numbers.gather(cells["i"]))
        if cells["row"].null_count():  # after the last </row>, in sheetData itself
            raise NotPlain("a cell outside any row")
        same_row = pl.col("i") == pl.col("i").shift(1)
        if cells.select((same_row & (pl.col("col") <= pl.col("col").shift(1))).any()).item():
            raise NotPlain("cells out of order")
        raw, values, complex_cells = self._values(cells, declared)
        # not blank once stripped (Rust's whitespace is Python's, over the characters XML has)
        filled = values.str.contains(r"[^\s]")
        cells = cells.with_columns(raw=raw, value=values, filled=filled)
        filled_rows = cells["i"].filter(filled).unique()
        rows = rows.with_columns(filled=pl.col("i").is_in(filled_rows.implode()).fill_null(False))
        kept = rows.filter(pl.col("filled"))
        if len(self.row_numbers) + kept.height > self.limits.max_rows:
            raise too_many_rows(self.limits.max_rows)
        self._bulk_issues(cells, complex_cells, width, hidden_columns)
        self.blank_rows += rows.height - kept.height
        self.last_row = rows["number"][-1] if rows.height else self.last_row
        self.hidden_rows += kept.filter(pl.col("hidden"))["number"].to_list()
        # the kept rows' cells under the header (a blank row's are all empty), placed row by
        # row into whole columns; "" where a row has no cell
        slot = pl.Series([None] * (sheet.last + 1), dtype=pl.Int64)
        slot = slot.scatter(kept["i"], pl.int_range(kept.height, eager=True, dtype=pl.Int64))
        placed = cells.select("i", "col", "value").filter(
            pl.col("col") < width, pl.col("value") != ""
        )
        placed = placed.with_columns(slot=slot.gather(placed["i"])).drop_nulls("slot")
        bulk = {}
        for i in range(width):  # scatter writes in place: each column its own
            bulk[i] = pl.repeat("", kept.height, dtype=pl.String, eager=True)
        for part in placed.partition_by("col", include_key=True):
            bulk[part["col"][0]].scatter(part["slot"], part["value"])
        return self._table(bulk, kept["number"])

    def _values(
        self, cells: pl.DataFrame, declared: dict[str | None, str]
    ) -> tuple[pl.Series, pl.Series, list[tuple[int, tuple[str, str | None, str | None, str]]]]:
        """Each cell's stored text and value as :meth:`_cell_value` gives them; the parts of
        the cells in other shapes by position."""
        kind, inline, raw = cells["kind"], cells["inline"], cells["raw"]
        # OOXML's _xHHHH_ escapes: only a text that has one can change, in either unescape
        escaped = raw.str.contains("_x", literal=True).fill_null(False)
        raw = _ooxml_unescaped(raw, escaped & inline)  # _rich_text's unescape
        value = raw.fill_null("")
        shared = (kind == "s") & raw.is_not_null() & cells["xml"].is_null()
        if shared.any():
            index = raw.filter(shared)
            if not index.str.contains("^[0-9]{1,9}$").all():
                raise NotPlain("a shared string index that is not a number")
            at = index.cast(pl.Int64)
            if (at >= len(self.strings)).any():
                raise NotPlain("a shared string that does not exist")
            strings = pl.Series(self.strings, dtype=pl.String)
            value = value.scatter(shared.arg_true(), strings.gather(at))
        boolean = (kind == "b") & raw.is_not_null()
        if boolean.any():
            true = raw.filter(boolean).str.strip_chars() == "1"
            shown = pl.select(pl.when(true).then(pl.lit("TRUE")).otherwise(pl.lit("FALSE")))
            value = value.scatter(boolean.arg_true(), shown.to_series())
        value = _ooxml_unescaped(value, escaped & kind.is_in(["str", "inlineStr"]))
        others: list[tuple[int, tuple[str, str | None, str | None, str]]] = []
        is_other = cells["xml"].is_not_null()
        if is_other.any():
            xml = cells["xml"].filter(is_other).to_list()
            names = " ".join(
                f"xmlns{':' + p if p else ''}={quoteattr(uri)}" for p, uri in declared.items()
            )
            root = etree.fromstring(f"<cells {names}>{''.join(xml)}</cells>".encode(), _CELLS)
            elements = list(root)
            if root.text or len(elements) != len(xml):
                raise NotPlain("cells that are not one element each")
            positions = is_other.arg_true().to_list()
            fixed: list[str] = []
            for position, elem in zip(positions, elements, strict=True):
                if not isinstance(elem.tag, str) or _local_name(elem.tag) != "c" or elem.tail:
                    raise NotPlain("cells that are not one element each")
                if any(_local_name(e.tag) in _INNER_SHEET_TAGS for e in elem.iterdescendants()):
                    raise NotPlain(
                        "a row, col or mergeCell inside a cell"
                    )  # the parser stops there
                parts = self._cell_value(elem)
                others.append((position, parts))
                fixed.append(parts[3])
            value = value.scatter(positions, pl.Series(fixed, dtype=pl.String))
        return raw, value, others

    def _bulk_issues(
        self,
        cells: pl.DataFrame,
        others: list[tuple[int, tuple[str, str | None, str | None, str]]],
        width: int,
        hidden_columns: list[tuple[int, int]],
    ) -> None:
        """The issues of the rows read column-wise, in the order :meth:`_row` gives them."""
        # (row, phase, column, cell check arguments): phase 0 the cells' own checks, 1 hidden
        # columns, 2 values beyond the header — in each row, as _element and _row go
        found: list[tuple[int, int, int, tuple[str, str | None, str | None, str, str | None]]]
        found = []
        simple = cells["xml"].is_null()
        kind, raw = cells["kind"], cells["raw"]
        checked = simple & (
            (kind == "e")
            | (
                (kind == "n")
                & raw.is_not_null()
                & (raw != "")
                & cells["col"].is_in(list(self.specs))
            )
        )
        picked = cells.select("row", "col", "kind", "raw", "value", "style").filter(checked)
        for row, col, k, r, v, style in picked.iter_rows():
            found.append((row, 0, col, (k, r, None, v, style)))
        rows, cols, styles = cells["row"], cells["col"], cells["style"]
        for position, (k, r, formula, v) in others:
            found.append((rows[position], 0, cols[position], (k, r, formula, v, styles[position])))
        filled = cells.select("row", "col", "filled").filter(pl.col("filled"))
        if hidden_columns:
            inside = pl.any_horizontal(
                [(pl.col("col") >= a) & (pl.col("col") <= b) for a, b in hidden_columns]
            )
            for row, col in filled.filter(inside).select("row", "col").iter_rows():
                found.append((row, 1, col, ("", None, None, "", None)))
        for row, col in filled.filter(pl.col("col") >= width).select("row", "col").iter_rows():
            found.append((row, 2, col, ("", None, None, "", None)))
        found.sort(key=lambda f: (f[0], f[1], f[2]))
        for row, phase, col, args in found:
            if phase == 0:
                self._cell_checks(row, col, *args)
            elif phase == 1:
                self._issue(
                    row,
                    col,
                    "hidden_column",
                    "is in a column hidden in Excel; unhide the column and check it",
                )
            else:
                self._issue(
                    row,
                    col,
                    "no_header",
                    f"has a value in column {column_letter(col)}, which has no header; "
                    "a row may have shifted",
                    label=f"column {column_letter(col)}",
                )


_CELLS = etree.XMLParser(
    resolve_entities=False, load_dtd=False, no_network=True, remove_comments=True, remove_pis=True
)


def _ooxml_unescaped(values: pl.Series, where: pl.Series) -> pl.Series:
    """``values`` with :func:`_unescape_ooxml` applied where ``where`` is true."""
    escaped = where & values.is_not_null()
    if not escaped.any():
        return values
    fixed = [_unescape_ooxml(v) for v in values.filter(escaped).to_list()]
    return values.scatter(escaped.arg_true(), pl.Series(fixed, dtype=pl.String))

"""The cells of a plain worksheet's XML, cut out column-wise (polars, in Rust) instead of parsed.

Most sheets are written by a handful of programs in one regular shape: ``<row r="2">`` holding
``<c r="A2" t="inlineStr"><is><t>text</t></is></c>``, ``<c r="B2" s="1"><v>12</v></c>`` and
the like. For such a ``sheetData`` the XML parser's work (2.9 M elements built for 100,000
rows) is replaced by literal splits and slices over whole columns of strings.

It is exact, not a guess: every piece of ``sheetData`` must match one of the strict shapes
below (checked by an anchored regular expression over the whole piece, so no byte is left
unaccounted for), which are well-formed XML by construction; entity and character references
are resolved as the XML parser would, line ends normalised, forbidden characters refused.
Anything else — comments, CDATA, processing instructions, whitespace between elements,
attributes in another order, single quotes, cells without references, rows out of order, other
encodings — makes :func:`cut_sheet` answer None, and the caller reads the sheet with the XML
parser as before. Cells whose content is not one of the simple shapes (formulas, rich text,
unusual attributes) are kept as XML for the caller to parse one by one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import IO

import polars as pl

__all__ = ["NotPlain", "PlainSheet", "PlainStrings", "cut_sheet", "cut_strings", "unescape_xml"]

_BLOCK = 4 * 1024 * 1024
FIRST_ELEMENTS = 64  # rows kept as XML for reading the header and titles above it
_OPEN = b"<sheetData>"
_CLOSE = b"</sheetData>"

_NAME = r"[A-Za-z_][A-Za-z0-9_.-]*"
# characters XML does not allow (and, in attribute values, those it would turn into spaces)
_BAD = r"\x00-\x1f\x{FFFE}\x{FFFF}"
# no ">" in a value either: the row tags are found again by "<row[^>]*>" below
_ROW_ATTRS = rf'(?: {_NAME}(?::{_NAME})?="[^"<>&{_BAD}]*")*'
_ROW_TAG = rf"<row{_ROW_ATTRS}"
# the text before a row's first cell: any empty rows (<row .../>), then the row's start tag
_HEAD = rf"^(?:{_ROW_TAG} ?/>)*{_ROW_TAG}>$"
_TAIL = rf"^(?:{_ROW_TAG} ?/>)*$"
_TEXT = r"[^<\x00-\x08\x0b\x0c\x0e-\x1f\x{FFFE}\x{FFFF}]*"  # references: see unescape_xml
_CELL_ATTRS = (
    r'r="[A-Z]{1,3}[0-9]+"(?: s="[0-9]+"(?: t="[a-zA-Z]+")?| t="[a-zA-Z]+"(?: s="[0-9]+")?)?'
)
# a cell, after its "<c ", in one of the shapes read column-wise
_SIMPLE = (
    f"^{_CELL_ATTRS}(?: ?/>|></c>|><v ?/></c>|><v>{_TEXT}</v></c>|><is ?/></c>|><is></is></c>"
    f'|><is><t ?/></is></c>|><is><t(?: xml:space="preserve")?>{_TEXT}</t></is></c>)$'
)
# any other cell with a reference: parsed by the XML parser, alone (it holds no "<c ")
_OTHER = rf'^r="[A-Z]{{1,3}}[0-9]+"(?: {_NAME}(?::{_NAME})?="[^"<&]*")*(?: ?/>|>(?s:.*)</c>)$'
_CELL_SCHEMA = {
    "i": pl.UInt32,
    "col": pl.Int32,
    "kind": pl.Categorical,
    "style": pl.Categorical,
    "raw": pl.String,
    "inline": pl.Boolean,
    "xml": pl.String,
}
_REFERENCE = re.compile(r"&(?:#x([0-9a-fA-F]+)|#([0-9]+)|(amp|lt|gt|quot|apos));")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
# XML allows spaces around the "=": encoding = "latin1" is a declaration all the same
_ENCODING = re.compile(
    rb"""^(?:\xef\xbb\xbf)?<\?xml[^?>]*?encoding[ \t\r\n]*=[ \t\r\n]*["']([^"']*)["']"""
)


class NotPlain(Exception):
    """The sheet is not in the plain shape: read it with the XML parser."""


@dataclass
class PlainSheet:
    """A plain sheet's parts: the XML around ``sheetData``, its rows and its cells.

    ``rows``: one line per row in order — ``e`` (the index of the text between two
    ``</row>``, which holds the row and any empty rows before it), ``i`` (``e`` for the row
    that holds cells, null for an empty row), ``number``, ``hidden``.
    ``elements``: the XML of the first ``e`` (without their ``</row>``), for the rows read
    one by one by the XML parser up to the header.
    ``cells``: ``i``, ``col`` (0-based), ``kind`` (``t=``, default ``n``), ``style``
    (``s=`` or null), ``raw`` (the stored text, references resolved; null when there is no
    ``<v>`` or ``<is>``), ``inline`` (the text came from ``<is>``), ``xml`` (null for the
    simple shapes; the cell's XML for the others).
    """

    prefix: bytes  # the XML up to and including <sheetData>
    suffix: bytes  # from </sheetData> to the end
    prefixes: set[str]  # namespace prefixes used on row attributes
    rows: pl.DataFrame
    elements: list[str]  # the first FIRST_ELEMENTS
    last: int  # the index of the last element (the text after the last </row>)
    cells: pl.DataFrame


def unescape_xml(text: str) -> str:
    """Text as the XML parser gives it: line ends normalised, references resolved."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "&" not in text:
        return text
    resolved, count = _REFERENCE.subn(_resolve, text)
    if count != text.count("&"):
        raise NotPlain("an & that is not a reference")
    return resolved


def _resolve(match: re.Match[str]) -> str:
    hex_digits, digits, name = match.groups()
    if name:
        return _NAMED[name]
    code = int(hex_digits, 16) if hex_digits else int(digits)
    if not (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    ):
        raise NotPlain(f"character reference {match.group(0)} is not an XML character")
    return chr(code)


def _check_prefix(prefix: bytes) -> None:
    declared = _ENCODING.match(prefix)
    if declared and declared.group(1).lower() not in (b"utf-8", b"utf8"):
        raise NotPlain("not UTF-8")
    head = prefix.lstrip(b"\xef\xbb\xbf")
    if not declared and head.startswith(b"<?xml") and b"encoding" in head.split(b"?>", 1)[0]:
        raise NotPlain("an encoding declared in a shape not read here")  # the rows are UTF-8
    start = prefix.find(b"?>") + 2 if prefix.lstrip(b"\xef\xbb\xbf").startswith(b"<?") else 0
    if b"<!" in prefix or b"<?" in prefix[start:]:
        raise NotPlain("a DTD, comment, CDATA or processing instruction before the rows")


def cut_sheet(stream: IO[bytes]) -> PlainSheet:
    """The rows and cells of a plain sheet's XML; :class:`NotPlain` if it is not plain.

    The XML is read in blocks of whole rows, so what is held at once stays a few blocks.
    """
    buffer = b""
    while (start := buffer.find(_OPEN)) < 0:
        more = stream.read(_BLOCK)
        if not more:
            raise NotPlain("no <sheetData> element")
        buffer += more
    prefix, buffer = buffer[: start + len(_OPEN)], buffer[start + len(_OPEN) :]
    _check_prefix(prefix)
    if b"</row>" in prefix:
        raise NotPlain("a row outside sheetData")
    blocks = _Blocks()
    while more := stream.read(_BLOCK):
        buffer += more
        cut = buffer.rfind(b"</row>")
        if cut >= 0:
            blocks.add(buffer[:cut], final=False)
            buffer = buffer[cut + len(b"</row>") :]
    end = buffer.rfind(_CLOSE)
    if end < 0 or b"</row>" in buffer[end:]:
        raise NotPlain("no </sheetData>, or a row after it")
    suffix = buffer[end:]
    blocks.add(buffer[:end], final=True)
    del buffer
    rows = pl.concat(blocks.rows)
    numbers = rows["number"]
    if (numbers.diff().drop_nulls() <= 0).any() or (numbers <= 0).any():
        raise NotPlain("rows out of order")
    prefixes = _prefixes(rows)
    return PlainSheet(
        prefix,
        suffix,
        prefixes,
        rows.drop("tag"),
        blocks.first,
        blocks.count - 1,
        pl.concat(blocks.cells),
    )


class _Blocks:
    """The rows and cells of the blocks read so far."""

    def __init__(self) -> None:
        self.count = 0  # elements: the texts between two </row>
        self.first: list[str] = []
        self.rows: list[pl.DataFrame] = []
        self.cells: list[pl.DataFrame] = []

    def add(self, block: bytes, *, final: bool) -> None:
        """The elements of ``block``: each was followed by </row>, but the final block's last."""
        try:
            parts = pl.Series(block.split(b"</row>"), dtype=pl.Binary).cast(pl.String)
        except pl.exceptions.PolarsError as exc:
            raise NotPlain("not UTF-8") from exc
        del block
        if parts.str.contains("]]>", literal=True).any():
            raise NotPlain("]]> in the text")
        if len(self.first) < FIRST_ELEMENTS:
            self.first += parts.head(FIRST_ELEMENTS - len(self.first)).to_list()
        offset, self.count = self.count, self.count + parts.len()
        elements = pl.DataFrame({"x": parts}).with_row_index("i", offset=offset)
        del parts
        pieces = (
            elements.with_columns(p=pl.col("x").str.split("<c "))
            .drop("x")
            .explode("p")
            .with_columns(head=pl.col("i") != pl.col("i").shift(1, fill_value=-1))
        )
        del elements
        heads = pieces.filter(pl.col("head")).drop("head")
        cells = pieces.filter(~pl.col("head")).drop("head")
        del pieces
        self.rows.append(_rows(heads, self.count - 1 if final else -1))
        self.cells.append(_cells(cells))


def _rows(heads: pl.DataFrame, last: int) -> pl.DataFrame:
    """Every row tag of the heads: its element, number, hidden flag; empty rows have no i."""
    shape_ok = (
        pl.when(pl.col("i") == last)
        .then(pl.col("p").str.contains(_TAIL))
        .otherwise(pl.col("p").str.contains(_HEAD))
    )
    checked = heads.with_columns(ok=shape_ok)
    if not checked["ok"].all():
        raise NotPlain("a row start tag in another shape")
    tags = (
        heads.with_columns(tag=pl.col("p").str.extract_all("<row[^>]*>"))
        .drop("p")
        .explode("tag")
        .drop_nulls("tag")
    )
    empty = tags["tag"].str.ends_with("/>")
    tags = tags.with_columns(
        e=pl.col("i"),
        i=pl.when(empty).then(None).otherwise(pl.col("i")),
        number=pl.col("tag").str.extract(' r="([0-9]{1,15})"', 1).cast(pl.Int64),
        hidden=pl.col("tag")
        .str.extract(' hidden="([^"]*)"', 1)
        .is_in(["1", "true"])
        .fill_null(False),
        names=pl.col("tag").str.extract_all(' [^ =]+="'),
    )
    if tags["number"].null_count() or tags["tag"].str.contains("xmlns", literal=True).any():
        raise NotPlain("a row without a number, or declaring namespaces")
    if not (tags["names"].list.len() == tags["names"].list.n_unique()).all():
        raise NotPlain("a row attribute given twice")
    return tags.drop("names")


def _prefixes(rows: pl.DataFrame) -> set[str]:
    found = rows["tag"].str.extract_all(f" ({_NAME}):").explode().drop_nulls()
    return {p.strip(" :") for p in found.unique().to_list()}


def _cells(cells: pl.DataFrame) -> pl.DataFrame:
    """The pieces after each ``<c ``: reference, type, style and stored text, column-wise."""
    piece = pl.col("p")
    cells = cells.with_columns(simple=piece.str.contains(_SIMPLE), ref=piece.str.head(6))
    other = cells.filter(~pl.col("simple"))["p"]
    if not other.str.contains(_OTHER).all() or other.str.contains("<!|<\\?").any():
        raise NotPlain("a cell in another shape, or holding a comment, CDATA or PI")
    refs = {r: _column(r) for r in cells["ref"].unique().to_list()}  # each must be a column
    # A simple cell with no <v> or <is> has the value "" and, but for an error cell, nothing
    # to check: _SheetParser stores nothing for it, and neither is it kept here.
    empty = piece.str.ends_with('"></c>') | piece.str.ends_with('"/>') | piece.str.ends_with('" />')
    cells = cells.filter(~(pl.col("simple") & empty & ~piece.str.contains(' t="e"', literal=True)))
    gt = piece.str.find(">", literal=True)  # the tag is ASCII: a byte offset is a character's
    length = piece.str.len_chars()
    in_v = piece.str.ends_with("</v></c>")
    in_t = piece.str.ends_with("</t></is></c>")
    spaced = piece.str.contains('<t xml:space="preserve">', literal=True)
    start = pl.when(in_v).then(gt + 4).when(spaced).then(gt + 29).otherwise(gt + 8)
    stop = pl.when(in_v).then(length - 8).otherwise(length - 13)
    # an element with no text (<v/>, <is/>, <t/>) still stores "", unlike no element
    inline = piece.str.contains("<is", literal=True)
    stores = inline | piece.str.ends_with("<v/></c>") | piece.str.ends_with("<v /></c>")
    out = cells.select(
        "i",
        "simple",
        "ref",
        attrs=piece.str.slice(0, gt).str.strip_chars_start(
            'r="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'
        ),
        raw=pl.when(in_v | in_t)
        .then(piece.str.slice(start, stop - start))
        .when(stores)
        .then(pl.lit(""))
        .otherwise(None),
        inline=inline,
    )
    xml = pl.Series("xml", [None] * out.height, dtype=pl.String)
    if other.len():
        xml = xml.scatter((~out["simple"]).arg_true(), "<c " + other)
    attrs = {a: _attributes(a) for a in out["attrs"].unique().to_list()}
    kinds = {a: k for a, (k, _) in attrs.items()}
    styles = {a: s for a, (_, s) in attrs.items()}
    raw = out["raw"]
    needs = raw.str.contains("[&\r]")
    if needs.any():
        fixed = [unescape_xml(t) for t in raw.filter(needs).to_list()]
        raw = raw.scatter(needs.arg_true(), pl.Series(fixed, dtype=pl.String))
    return out.select(
        "i",
        col=pl.col("ref").replace_strict(refs, return_dtype=pl.Int32),
        kind=pl.col("attrs").replace_strict(kinds, return_dtype=pl.Categorical),
        style=pl.col("attrs").replace_strict(styles, return_dtype=pl.Categorical),
        raw=raw,
        inline="inline",
        xml=xml,
    ).cast(_CELL_SCHEMA)  # type: ignore[arg-type]


def _column(head: str) -> int:
    """The 0-based column of a reference's first characters (``r="AB1`` -> 27)."""
    index = 0
    for ch in head[3:]:
        if not "A" <= ch <= "Z":
            break
        index = index * 26 + ord(ch) - 64
    if not 0 < index <= 16384:
        raise NotPlain(f"column {head[3:]} is beyond Excel's last")
    return index - 1


def _attributes(rest: str) -> tuple[str, str | None]:
    """A simple cell's type and style from its attributes after the reference."""
    kind = re.search(r' t="([a-zA-Z]+)"', rest)
    style = re.search(r' s="([0-9]+)"', rest)
    return (kind.group(1) if kind else "n"), (style.group(1) if style else None)


_SST_PREFIX = re.compile(
    rb"(?:\xef\xbb\xbf)?(?:<\?xml[^<>?]*\?>[ \t\r\n]*)?"
    rb'(<sst(?: [A-Za-z_][A-Za-z0-9_.:-]*="[^"<&]*")*>)<si>'
)
_SST_SUFFIX = re.compile(rb"</si></sst>[ \t\r\n]*")
_STRING = f'^(?:<t(?: xml:space="preserve")?>{_TEXT}</t>|<t/>|)$'


@dataclass
class PlainStrings:
    """A plain ``sst`` part: each item's text (references resolved, ``_xHHHH_`` left as they
    are), "" where an item is in another shape; those (rich text, phonetic runs) as XML by
    index, with the part's root start tag to parse them under, and the part's text up to
    and including that tag (its declaration too), which the caller must parse whatever the
    items: nothing here checks it is well-formed (a root attribute twice, an undeclared prefix,
    a declaration out of order)."""

    texts: list[str]
    root: str
    others: dict[int, str]
    prologue: bytes


def cut_strings(stream: IO[bytes]) -> PlainStrings:
    """The shared strings of a plain ``sst`` part; :class:`NotPlain` if it is not plain."""
    data = stream.read()
    head = _SST_PREFIX.match(data)
    tail = data.rfind(b"</si>")
    if head is None or tail < head.end() or not _SST_SUFFIX.fullmatch(data, tail):
        raise NotPlain("not a plain sst")
    _check_prefix(data[: head.end()])
    try:
        body = pl.Series([data[head.end() : tail]], dtype=pl.Binary).cast(pl.String)
    except pl.exceptions.PolarsError as exc:
        raise NotPlain("not UTF-8") from exc
    root = data[head.start(1) : head.end(1)].decode("ascii")
    prologue = data[: head.end(1)]
    del data
    if body.str.contains("]]>", literal=True).item():
        raise NotPlain("]]> in the text")
    items = body.str.split("</si><si>").explode()
    del body
    simple = items.str.contains(_STRING)
    length = items.str.len_chars()
    text = pl.select(
        pl.when(~simple | (length < 7))
        .then(pl.lit(""))
        .when(items.str.starts_with('<t xml:space="preserve">'))
        .then(items.str.slice(24, length - 28))
        .otherwise(items.str.slice(3, length - 7))
    ).to_series()
    needs = text.str.contains("[&\r]")
    if needs.any():
        fixed = [unescape_xml(t) for t in text.filter(needs).to_list()]
        text = text.scatter(needs.arg_true(), pl.Series(fixed, dtype=pl.String))
    at = (~simple).arg_true().to_list()
    others = dict(zip(at, items.gather(at).to_list(), strict=True)) if at else {}
    return PlainStrings(text.to_list(), root, others, prologue)

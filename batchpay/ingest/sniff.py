"""What a payout file is before it is parsed: its size, its format, its text.

The format is decided by the file name and the first bytes (legacy, encrypted and other binary
files are refused saying what they are); the text by its byte order mark and the layout's
declared encoding; the delimiter by which one splits the header row into known headers. The
size limits are here too: the file's own, and a workbook's once unzipped (zip bombs).
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from pathlib import Path
from typing import IO, Any, Literal

from batchpay.errors import InputError
from batchpay.layout import Layout
from batchpay.source import check_size

__all__ = [
    "MIB",
    "Budget",
    "bomless_utf16",
    "check_delimiter",
    "check_size",
    "file_format",
    "guard_zip",
    "line_at",
    "to_utf8",
]

_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"
_ENCRYPTION_MARK = "EncryptionInfo".encode("utf-16-le")
_BINARY_MAGIC = {
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"\x1f\x8b": "a gzip archive",
    b"PK\x03\x04": "a ZIP archive or Excel workbook (.xlsx)",
    b"PK\x05\x06": "an empty ZIP archive",
    _OLE2_MAGIC: "a legacy Office file (.xls/.doc)",
}
_CSV_EXTENSIONS = {".csv", ".txt", ".tsv", ""}
_XLSX_EXTENSIONS = {".xlsx", ".xlsm"}
MIB = 1024 * 1024


def file_format(data: bytes, filename: str) -> Literal["csv", "xlsx"]:
    """``xlsx`` or ``csv``, by name and first bytes; other formats refused by name."""
    ext = Path(filename).suffix.lower()
    if data.startswith(_OLE2_MAGIC):
        if _ENCRYPTION_MARK in data:
            raise InputError(
                f"{filename} is an encrypted (password-protected) Excel workbook",
                code="encrypted",
                hint="remove the password in Excel (File > Info > Protect Workbook) and save again",
            )
        raise InputError(
            f"{filename} is a legacy Excel .xls workbook, which batchpay does not read",
            code="legacy_xls",
            hint="open it in Excel and save it as .xlsx (Excel Workbook) or CSV UTF-8",
        )
    if ext in _XLSX_EXTENSIONS or (ext not in _CSV_EXTENSIONS and data.startswith(_ZIP_MAGIC)):
        if not data.startswith(_ZIP_MAGIC):
            raise InputError(
                f"{filename} is named {ext} but is not an Excel workbook",
                code="not_xlsx",
                hint="save it from Excel as .xlsx, or rename it to .csv if it is text",
            )
        return "xlsx"
    if ext == ".xls":
        raise InputError(
            f"{filename} is named .xls but is not a legacy Excel workbook",
            code="unsupported_format",
            hint="save it from Excel as .xlsx or CSV UTF-8",
        )
    for magic, what in _BINARY_MAGIC.items():
        if data.startswith(magic):
            raise InputError(
                f"{filename} is {what}, not a CSV text file",
                code="binary",
                hint="export the payout sheet as CSV UTF-8, or give the .xlsx file its own name",
            )
    return "csv"


_DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "vertical bars"}


def check_delimiter(data: bytes, sep: str, layout: Layout) -> None:
    """Refuse a header row that is separated by another delimiter than the layout's.

    Read with the wrong delimiter, a semicolon export is one column of unknown headers (or,
    when amounts have decimal commas, a ragged file): name the real delimiter instead.
    """
    line = data[:65536].split(b"\n", 1)[0].decode("utf-8", "replace").lstrip("\ufeff")

    def recognised(delimiter: str) -> int:
        try:
            fields = next(csv.reader([line.rstrip("\r")], delimiter=delimiter), [])
        except csv.Error:  # e.g. a field over the csv module's size limit: not a header
            return 0
        return len({c for f in fields if (c := layout.match_header(f)) is not None})

    declared = recognised(sep)
    found = max((d for d in _DELIMITER_NAMES if d != sep), key=recognised)
    if recognised(found) >= 2 and recognised(found) > declared:
        shown = "\\t" if found == "\t" else found
        raise InputError(
            f"the header row is separated by {_DELIMITER_NAMES[found]}, but the layout expects "
            f"{_DELIMITER_NAMES.get(sep, repr(sep))}",
            code="delimiter",
            row=1,
            hint=f'export the file again as "CSV UTF-8 (comma delimited)", or set '
            f'delimiter = "{shown}" under [file] in a layout file and pass it with --layout',
        )


def bomless_utf16(data: bytes) -> str | None:
    """``UTF-16LE``/``UTF-16BE`` when NUL bytes sit at every other position (no BOM)."""
    sample = data[:4096]
    low, high = sample[1::2], sample[0::2]  # little endian: the high bytes are the odd ones
    if len(low) < 4:
        return None
    for zeros, other, name in ((low, high, "UTF-16LE"), (high, low, "UTF-16BE")):
        if zeros.count(0) >= 0.9 * len(zeros) and other.count(0) <= 0.1 * len(other):
            return name
    return None


def to_utf8(data: bytes, encoding: str) -> bytes:
    """The bytes as UTF-8; BOM and declared legacy encodings handled, others refused clearly."""
    utf32 = data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE))
    if utf32 and not encoding.startswith("utf-32"):
        raise InputError(
            "the file is UTF-32 text (it starts with a UTF-32 byte order mark) but the "
            f"layout declares {encoding}",
            code="encoding",
            row=1,
            hint='save it as "CSV UTF-8", or set encoding = "utf-32" under [file] in the layout',
        )
    utf16 = not utf32 and data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if utf16 and not encoding.startswith("utf-16"):
        raise InputError(
            "the file is UTF-16 text (it starts with a UTF-16 byte order mark) but the "
            f"layout declares {encoding}",
            code="encoding",
            row=1,
            hint='save it as "CSV UTF-8", or set encoding = "utf-16" under [file] in the layout',
        )
    if encoding in ("utf-8", "utf-8-sig"):
        return data  # checked by polars while parsing; see _diagnose_csv in the CSV reader
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"byte 0x{data[exc.start]:02X} at byte {exc.start} (line {line_at(data, exc.start)}) "
            f"is not valid {encoding} text",
            code="encoding",
            row=line_at(data, exc.start),
            hint="check the encoding declared under [file] in the layout",
        ) from exc
    return text.lstrip("\ufeff").encode("utf-8")


def line_at(data: bytes, offset: int) -> int:
    """The line number (from 1) that byte ``offset`` is on."""
    return data.count(b"\n", 0, offset) + 1


def guard_zip(infos: list[zipfile.ZipInfo], compressed: int, layout: Layout) -> None:
    """Refuse zip bombs before extracting anything, from the declared sizes."""
    total = sum(i.file_size for i in infos)
    limits = layout.limits
    if total > limits.max_xlsx_uncompressed_bytes:
        raise InputError(
            f"the workbook expands to {total / MIB:.0f} MiB; the limit is "
            f"{limits.max_xlsx_uncompressed_bytes / MIB:.0f} MiB"
            " (limits.max_xlsx_uncompressed_bytes)",
            code="zip_bomb",
            hint="split the workbook, or raise limits.max_xlsx_uncompressed_bytes in the layout",
        )
    if total > MIB and total / max(compressed, 1) > limits.max_xlsx_compression_ratio:
        raise InputError(
            f"the workbook is compressed {total / max(compressed, 1):.0f} times; the limit is "
            f"{limits.max_xlsx_compression_ratio} (limits.max_xlsx_compression_ratio)",
            code="zip_bomb",
            hint="this looks like a zip bomb; save the workbook again from Excel, or if it is"
            " genuine, raise limits.max_xlsx_compression_ratio in the layout",
        )


class Budget:
    """Counts the bytes actually decompressed, in case the declared sizes lie."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def open(self, archive: zipfile.ZipFile, name: str) -> io.BufferedReader:
        return io.BufferedReader(_CountingReader(archive.open(name), self))


class _CountingReader(io.RawIOBase):
    def __init__(self, inner: IO[bytes], budget: Budget) -> None:
        self.inner = inner
        self.budget = budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self.inner.read(len(buffer))
        self.budget.left -= len(chunk)
        if self.budget.left < 0:
            raise InputError(
                "the workbook expands to more than its declared size or the limit"
                " (limits.max_xlsx_uncompressed_bytes)",
                code="zip_bomb",
                hint="this looks like a zip bomb; save the workbook again from Excel",
            )
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        self.inner.close()
        super().close()

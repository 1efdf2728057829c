"""CSV payout files: every field as the exact string the file holds, numbered by row.

polars parses the file; a scan of its lines beside the parse finds what polars would pad or
refuse without saying where (short rows, ragged rows, unclosed quotes), with the row number.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from concurrent.futures import ThreadPoolExecutor

import polars as pl

from batchpay.errors import InputError
from batchpay.ingest.canonical import ROW, Table
from batchpay.ingest.sniff import bomless_utf16, check_delimiter, line_at, to_utf8
from batchpay.ingest.structure import pad_title_lines
from batchpay.layout import Layout

__all__ = ["read_csv"]


def read_csv(data: bytes, layout: Layout) -> Table:
    """CSV bytes as a raw :class:`Table`, by the layout's encoding and delimiter."""
    encoding = codecs.lookup(layout.file.encoding).name
    sep = layout.file.delimiter
    data = to_utf8(data, encoding)
    nul = data.find(b"\x00")
    if nul >= 0 and (utf16 := bomless_utf16(data)) is not None:
        raise InputError(
            f"the file looks like {utf16} text without a byte order mark (every other byte is "
            "zero); batchpay reads UTF-8",
            code="encoding",
            row=1,
            hint='save it as "CSV UTF-8", or set encoding = "utf-16" under [file] in the layout',
        )
    if nul >= 0:
        raise InputError(
            f"the file contains binary data (a NUL byte at byte {nul}, "
            f"line {line_at(data, nul)}); it is not a CSV text file",
            code="binary",
            row=line_at(data, nul),
            hint="export the payout sheet again as CSV UTF-8",
        )
    if re.search(rb"[^\s\xef\xbb\xbf]", data) is None:
        raise InputError("the file is empty", code="empty", hint="export the file again")
    if b"\n" not in data and b"\r" in data.rstrip(b"\r"):
        raise InputError(
            "the file's lines end with CR only (classic Mac OS line endings)",
            code="line_endings",
            row=1,
            hint='save it again as "CSV UTF-8", which ends lines with CR LF',
        )
    check_delimiter(data, sep, layout)
    data = pad_title_lines(data, sep, layout)  # a title line typed without separators
    with ThreadPoolExecutor(max_workers=1) as pool:
        # polars parses without the GIL while this thread counts the lines
        parsed = pool.submit(_parse_csv, data, sep)
        # (polars counts the lines with memchr, several times faster than bytes.count)
        lines = pl.scan_lines(data).select(pl.len()).collect().item()
        frame = parsed.result()
    if lines == frame.height:
        _check_short_rows(data, sep, frame)
    elif _scan_records(data, sep) != frame.height:  # pragma: no cover - polars and we disagree
        raise InputError(
            "the CSV rows could not be delimited reliably",
            code="malformed_csv",
            hint="check the file for stray quote characters",
        )
    header = ["" if v is None else str(v) for v in frame.row(0)[1:]]
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    names = {c: f"c{i}" for i, c in enumerate(frame.columns[1:])}
    frame = frame.slice(1).rename(names).with_columns(pl.col(ROW).cast(pl.Int64))
    return Table(header=header, frame=frame, encoding=encoding, delimiter=sep)


def _parse_csv(data: bytes, sep: str) -> pl.DataFrame:
    """Every field as a string, one row per record (header included), numbered from 1."""
    try:
        return pl.read_csv(
            data,
            has_header=False,
            separator=sep,
            quote_char='"',
            infer_schema=False,
            empty_string_is_null=False,
            truncate_ragged_lines=False,
            raise_if_empty=True,
            row_index_name=ROW,
            row_index_offset=1,
        )
    except pl.exceptions.PolarsError as exc:
        _scan_records(data, sep)  # raises with the row when it finds the problem
        raise _diagnose_csv(data, sep) from exc


def _check_short_rows(data: bytes, sep: str, frame: pl.DataFrame) -> None:
    """Find rows with fewer fields than the header (polars pads them silently).

    Only for files where every record is one line. A short row leaves the last column empty,
    so only rows whose last cell is empty have their separators counted.
    """
    last = frame.columns[-1]
    candidates = frame.filter((pl.col(last) == "") | (pl.col(ROW) == 1))[ROW]
    if candidates.len() <= 1:
        return
    line = pl.col("line")
    quoted = line.str.contains('"', literal=True)
    outside = pl.when(quoted).then(line.str.replace_all(r'"[^"]*("|$)', "")).otherwise(line)
    per_line = (
        pl.scan_lines(data)
        .with_row_index("line_no", offset=1)
        .filter(pl.col("line_no").is_in(candidates.cast(pl.UInt32).implode()))
        .select(
            pl.col("line_no").cast(pl.Int64).alias("record"),
            outside.str.count_matches(sep, literal=True).cast(pl.Int64).alias("seps"),
            (line.str.len_bytes() == 0).alias("empty"),
            pl.col("line_no").cast(pl.Int64).alias("line"),
        )
        .collect()
    )
    _check_field_counts(data, sep, per_line, frame.height)


def _scan_records(data: bytes, sep: str) -> int:
    """Check every record has the header's number of fields and every quote closes.

    One vectorised pass over the file's lines: a record is a line that does not start inside a
    quoted field; separators inside quoted segments do not count. Returns the number of records
    (the header included), which is also the number of rows polars parses.
    """
    line = pl.col("line")
    try:
        stats = (
            pl.scan_lines(data)
            .with_columns(quotes=line.str.count_matches('"', literal=True).cast(pl.Int64))
            .select(
                line.str.count_matches(sep, literal=True).cast(pl.Int64).alias("seps"),
                pl.col("quotes"),
                (line.str.len_bytes() == 0).alias("empty"),
                # only lines with quotes need their quoted segments removed (few, usually)
                pl.when(pl.col("quotes") > 0).then(line).alias("quoted"),
            )
            .collect()
        )
    except pl.exceptions.PolarsError as exc:
        raise _diagnose_csv(data, sep) from exc
    if stats.is_empty():
        raise InputError("the file is empty", code="empty", hint="export the file again")
    if stats["quotes"].sum() == 0:
        numbers = pl.int_range(1, pl.len() + 1, dtype=pl.Int64)
        per_record = stats.select(numbers.alias("record"), "seps", "empty", numbers.alias("line"))
        return _check_field_counts(data, sep, per_record, stats.height)
    total = pl.col("quotes").cum_sum()
    stats = stats.with_columns(
        inside=((total - pl.col("quotes")) % 2) == 1,
        ends_inside=(total % 2) == 1,
    ).with_columns(
        record=(~pl.col("inside")).cum_sum().cast(pl.Int64),
        line=pl.int_range(1, pl.len() + 1, dtype=pl.Int64),
    )
    n_records = int(stats["record"][-1])
    if bool(stats["ends_inside"][-1]):
        opened = stats.filter(~pl.col("inside") & pl.col("ends_inside"))["record"]
        row = int(opened[-1]) if opened.len() else 1
        raise InputError(
            f'row {row} has a quote (") that opens a field which is never closed',
            code="unbalanced_quote",
            row=row,
            hint='every quoted field needs a closing quote; a quote inside a value is written ""',
        )
    quoted = pl.col("quoted")
    prefixed = pl.when(pl.col("inside")).then(pl.lit('"') + quoted).otherwise(quoted)
    outside = prefixed.str.replace_all(r'"[^"]*("|$)', "").str.count_matches(sep, literal=True)
    stats = stats.with_columns(
        seps=pl.when(quoted.is_not_null())
        .then(outside.cast(pl.Int64))
        .when(pl.col("inside"))
        .then(0)
        .otherwise(pl.col("seps"))
    )
    single = stats.filter(~pl.col("inside") & ~pl.col("ends_inside")).select(
        "record", "seps", "empty", "line"
    )
    multi = (
        stats.filter(pl.col("inside") | pl.col("ends_inside"))
        .group_by("record")
        .agg(pl.col("seps").sum(), pl.col("empty").all(), pl.col("line").min())
    )
    per_record = pl.concat([single, multi]).sort("record")
    return _check_field_counts(data, sep, per_record, n_records)


def _check_field_counts(data: bytes, sep: str, per_record: pl.DataFrame, n_records: int) -> int:
    expected = int(per_record["seps"][0])
    bad = per_record.filter((pl.col("seps") != expected) & ~pl.col("empty")).head(10_000)
    if bad.is_empty():
        return n_records
    # a short record made only of separators, spaces and quotes is a blank row, not an error
    texts = (
        pl.scan_lines(data)
        .with_row_index("line_no", offset=1)
        .filter(pl.col("line_no").is_in(bad["line"].cast(pl.UInt32).implode()))
        .select("line_no", "line")
        .collect()
    )
    blank = re.compile(r'[\s"' + re.escape(sep) + r"]*")
    blank_lines = [int(i) for i, text in texts.iter_rows() if blank.fullmatch(text)]
    real = bad.filter(~pl.col("line").is_in(blank_lines))
    if real.is_empty():
        return n_records
    row, found = (int(v) for v in real.row(0)[:2])
    more = f" (and {real.height - 1} more row(s))" if real.height > 1 else ""
    raise InputError(
        f"row {row} has {found + 1} fields but the header has {expected + 1}{more}",
        code="ragged_row",
        row=row,
        hint="a separator is missing or extra in that row; values containing the separator "
        "must be in quotes",
    )


def _diagnose_csv(data: bytes, sep: str) -> InputError:
    """Explain why polars could not parse the CSV, with a row number."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = line_at(data, exc.start)
        guess = ""
        try:
            data.decode("cp1252")
            guess = " It looks like Windows-1252 / Latin-1 text."
        except UnicodeDecodeError:
            pass
        return InputError(
            f"byte 0x{data[exc.start]:02X} at byte {exc.start} (line {line}) is not UTF-8 "
            f"text.{guess}",
            code="encoding",
            row=line,
            hint='save the file as "CSV UTF-8", or declare its encoding (e.g. encoding = '
            '"cp1252") under [file] in the layout',
        )
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), delimiter=sep, strict=True)
    try:
        width = None
        for record in reader:
            if width is None:
                width = len(record)
            elif len(record) != width and any(v.strip() for v in record):
                return InputError(
                    f"row {reader.line_num} has {len(record)} fields but the header has {width}",
                    code="ragged_row",
                    row=reader.line_num,
                    hint="a separator is missing or extra in that row",
                )
    except csv.Error as exc:
        return InputError(
            f"row {reader.line_num + 1} is not valid CSV: {exc}",
            code="malformed_csv",
            row=reader.line_num + 1,
            hint='check the quotes in that row; a quote inside a value is written ""',
        )
    return InputError(
        "the file could not be read as CSV",
        code="malformed_csv",
        hint="check the delimiter declared in the layout and the quotes in the file",
    )

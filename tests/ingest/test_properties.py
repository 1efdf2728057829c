"""Properties: any bytes either read or fail with InputError; CSV cells round-trip exactly."""

from __future__ import annotations

import contextlib
import csv
import io
import random
import zipfile

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from batchpay.errors import InputError
from batchpay.ingest import read_bytes
from batchpay.layout import Layout, load_layout

from .helpers import HEADER, VALID, csv_bytes, payout_sheet, xlsx_bytes

LAYOUT: Layout = load_layout()
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def read_or_input_error(data: bytes, name: str) -> None:
    with contextlib.suppress(InputError):
        read_bytes(data, name, LAYOUT)


@FAST
@given(st.binary(max_size=2048))
@example(b'Reference\n"')
@example(b"\xff\xfe\x00")
@example(b"PK\x03\x04")
def test_arbitrary_bytes_as_csv_only_raise_input_error(data: bytes) -> None:
    """Whatever the bytes, reading them as CSV gives a file or an InputError."""
    read_or_input_error(data, "payouts.csv")


@FAST
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_as_xlsx_only_raise_input_error(data: bytes) -> None:
    """Whatever the bytes, reading them as XLSX gives a file or an InputError."""
    read_or_input_error(data, "payouts.xlsx")


VALID_XLSX = xlsx_bytes([payout_sheet([VALID, VALID])])


@FAST
@given(st.integers(min_value=0), st.lists(st.integers(0, 255), min_size=1, max_size=8))
def test_damaged_workbook_only_raises_input_error(seed: int, noise: list[int]) -> None:
    """A real workbook with bytes flipped anywhere gives a file or an InputError."""
    data = bytearray(VALID_XLSX)
    rng = random.Random(seed)
    for value in noise:
        data[rng.randrange(len(data))] = value
    read_or_input_error(bytes(data), "payouts.xlsx")


@FAST
@given(st.integers(min_value=0), st.binary(min_size=1, max_size=64))
def test_damaged_sheet_xml_only_raises_input_error(seed: int, junk: bytes) -> None:
    """Garbage spliced into the sheet XML (valid zip around it) gives a file or an InputError."""
    source = zipfile.ZipFile(io.BytesIO(VALID_XLSX))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            payload = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                at = random.Random(seed).randrange(len(payload))
                payload = payload[:at] + junk + payload[at:]
            target.writestr(info.filename, payload)
    read_or_input_error(out.getvalue(), "payouts.xlsx")


# Unicode White_Space, what batchpay trims (Python's str.strip() also strips \x1c-\x1f)
WHITE_SPACE = "".join(
    ch for ch in map(chr, range(0x3001)) if ch.isspace() and ch not in "\x1c\x1d\x1e\x1f"
)

cell_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
)


@FAST
@given(
    st.lists(
        st.fixed_dictionaries({"Description": cell_text, "City": cell_text}),
        min_size=1,
        max_size=5,
    )
)
def test_csv_cells_round_trip_exactly_after_trimming(rows: list[dict[str, str]]) -> None:
    """Any text written by a standard CSV writer reads back as the same, trimmed, text."""
    full = [{**VALID, **r, "Reference": f"R{i}"} for i, r in enumerate(rows)]
    data = csv_bytes(full)
    try:
        ingested = read_bytes(data, "p.csv", LAYOUT)
    except InputError as exc:  # text a standard CSV writer produced is never refused
        raise AssertionError(f"refused: {exc.message}") from exc
    frame = ingested.frame
    assert frame["description"].to_list() == [r["Description"].strip(WHITE_SPACE) for r in rows]
    assert frame["city"].to_list() == [r["City"].strip(WHITE_SPACE) for r in rows]
    # row numbers count records, whatever line breaks the cells hold
    assert frame["_row"].to_list() == list(range(2, 2 + len(rows)))


@FAST
@given(st.lists(st.lists(cell_text, min_size=1, max_size=len(HEADER) + 2), max_size=4))
def test_ragged_csv_only_raises_input_error(records: list[list[str]]) -> None:
    """Rows of any width under a real header give a file or an InputError."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(records)
    read_or_input_error(buffer.getvalue().encode(), "p.csv")

"""The default limits agree: max_rows rows fit the byte limits; each refusal names its limit."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from batchpay.errors import InputError
from batchpay.ingest import read_bytes
from batchpay.ingest.sniff import check_size, guard_zip
from batchpay.layout import Layout, Limits, load_layout

from .helpers import VALID, csv_bytes, payout_sheet, xlsx_bytes

ROOT = Path(__file__).resolve().parents[2]
# A realistic width for a payout file's row: ~205 bytes as batchpay.testing writes one as CSV,
# ~1,300 once a workbook openpyxl wrote is unzipped (27 columns, shared strings).
CSV_ROW_BYTES = 250
XLSX_ROW_BYTES = 1300


@pytest.fixture
def layout() -> Layout:
    return load_layout()


def _refused(data: bytes, layout: Layout, name: str) -> InputError:
    with pytest.raises(InputError) as caught:
        read_bytes(data, name, layout)
    return caught.value


@pytest.mark.parametrize("path", ["schemas/layout.toml", "batchpay/data/layout.toml"])
def test_both_default_layouts_have_the_documented_limits(path: str) -> None:
    """The editable and the packaged layout state the same limits as the code's defaults."""
    assert load_layout(ROOT / path).limits == Limits()


def test_a_file_of_max_rows_rows_is_within_the_size_limit(layout: Layout) -> None:
    """A CSV of max_rows realistic rows passes the size check the default layout makes."""
    check_size(layout.limits.max_rows * CSV_ROW_BYTES, "pay.csv", layout)


def test_a_workbook_of_max_rows_rows_is_within_the_unzipped_limits(layout: Layout) -> None:
    """A workbook of max_rows realistic rows passes the zip guard and fits the file limit."""
    info = zipfile.ZipInfo("xl/worksheets/sheet1.xml")
    info.file_size = layout.limits.max_rows * XLSX_ROW_BYTES
    compressed = info.file_size // 11  # as measured on the same workbook
    guard_zip([info], compressed, layout)
    check_size(compressed, "pay.xlsx", layout)


def test_a_file_over_the_size_limit_names_the_limit_to_raise(layout: Layout) -> None:
    """The size refusal says which setting to raise."""
    with pytest.raises(InputError) as caught:
        check_size(layout.limits.max_file_bytes + 1, "pay.csv", layout)
    assert "limits.max_file_bytes" in caught.value.message
    assert "limits.max_file_bytes" in (caught.value.hint or "")


@pytest.mark.parametrize("name", ["payouts.csv", "payouts.xlsx"])
def test_too_many_rows_names_the_limit_to_raise(layout: Layout, name: str) -> None:
    """A CSV or a workbook over max_rows is refused with limits.max_rows in the message."""
    small = replace(layout, limits=replace(layout.limits, max_rows=2))
    rows = [{**VALID, "Reference": f"INV-2026-{n:04d}"} for n in range(3)]
    data = csv_bytes(rows) if name.endswith(".csv") else xlsx_bytes([payout_sheet(list(rows))])
    error = _refused(data, small, name)
    assert error.code == "too_many_rows"
    assert "limits.max_rows" in error.message


def test_a_workbook_over_the_unzipped_limit_names_the_limit_to_raise(layout: Layout) -> None:
    """The zip guard's size refusal says which setting to raise."""
    info = zipfile.ZipInfo("xl/worksheets/sheet1.xml")
    info.file_size = layout.limits.max_xlsx_uncompressed_bytes + 1
    with pytest.raises(InputError) as caught:
        guard_zip([info], info.file_size // 10, layout)
    assert "limits.max_xlsx_uncompressed_bytes" in caught.value.message

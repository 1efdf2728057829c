"""The ingest package: its public names, and a file read from bytes is the file read from disk."""

from __future__ import annotations

import inspect
from dataclasses import fields
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

import batchpay.ingest as ingest
from batchpay.ingest import IngestedFile, read_bytes, read_file
from batchpay.layout import Layout, load_layout

from .helpers import VALID, num, payout_sheet, xlsx_bytes

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture(scope="module")
def layout() -> Layout:
    return load_layout()


def assert_same(from_bytes: IngestedFile, from_file: IngestedFile) -> None:
    assert_frame_equal(from_bytes.frame, from_file.frame)
    for f in fields(IngestedFile):
        if f.name != "frame":
            assert getattr(from_bytes, f.name) == getattr(from_file, f.name), f.name


def test_all_is_exactly_the_public_names() -> None:
    """__all__ is what callers import (IngestedFile, read_bytes, read_file), all defined here."""
    assert sorted(ingest.__all__) == ["IngestedFile", "read_bytes", "read_file", "read_source"]
    defined = {
        name
        for name, value in vars(ingest).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == ingest.__name__
    }
    assert defined == set(ingest.__all__)


@pytest.mark.parametrize("name", ["payouts.csv", "payouts.xlsx"])
def test_sample_read_from_bytes_is_the_sample_read_from_disk(layout: Layout, name: str) -> None:
    """read_bytes of a sample's bytes and name gives what read_file of the sample gives."""
    path = SAMPLES / name
    from_file = read_file(path, layout)
    from_bytes = read_bytes(path.read_bytes(), name, layout)
    assert from_file.rows == 34
    assert_same(from_bytes, from_file)


def test_damaged_workbook_from_bytes_reports_what_it_reports_from_disk(
    layout: Layout, tmp_path: Path
) -> None:
    """A workbook with Excel damage gives the same frame and the same issues either way."""
    row = {**VALID, "Payment Method": "uk_bank", "Account Number": num("3185427")}
    data = xlsx_bytes([payout_sheet([row, VALID])])
    path = tmp_path / "damaged.xlsx"
    path.write_bytes(data)
    from_file = read_file(path, layout)
    from_bytes = read_bytes(data, "damaged.xlsx", layout)
    assert [i.code for i in from_file.issues] == ["stored_as_number"]
    assert_same(from_bytes, from_file)

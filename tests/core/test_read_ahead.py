"""A file read ahead (while a command imports what checks it) is the file `from_path` reads."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from batchpay import ingest
from batchpay.errors import InputError
from batchpay.layout import load_layout
from batchpay.source import CONTROL_SUFFIX, from_path, read_ahead
from batchpay.testing import payout_row, write_csv


def test_a_file_read_ahead_is_the_file_with_its_hash_and_control_file(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "pay.csv", [payout_row(i) for i in range(3)])
    (tmp_path / ("pay.csv" + CONTROL_SUFFIX)).write_text("rows = 3\n")
    layout = load_layout()
    ahead = read_ahead(path, layout).result(timeout=30)
    assert ahead == from_path(path, layout)
    assert ahead.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ahead.sidecar(CONTROL_SUFFIX) == b"rows = 3\n"
    # what is read from it is hashed by that same digest
    assert ingest.read_source(ahead, layout).sha256 == ahead.sha256


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "big.csv", [payout_row(i) for i in range(50)])
    layout = load_layout()
    small = dataclasses.replace(
        layout, limits=dataclasses.replace(layout.limits, max_file_bytes=100)
    )
    with pytest.raises(InputError) as caught:
        read_ahead(path, small).result(timeout=30)
    assert caught.value.code == "too_large"


def test_a_missing_file_is_the_same_error_as_reading_it(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        read_ahead(tmp_path / "gone.csv", load_layout()).result(timeout=30)
    assert caught.value.code == "not_found"


def test_the_hash_asked_from_many_threads_at_once_is_the_one_digest(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path = write_csv(tmp_path / "pay.csv", [payout_row(i) for i in range(200)])
    ahead = read_ahead(path, load_layout()).result(timeout=30)
    with ThreadPoolExecutor(max_workers=8) as pool:
        digests = set(pool.map(lambda _: ahead.sha256, range(32)))
    assert digests == {hashlib.sha256(path.read_bytes()).hexdigest()}
    assert ahead._digest == list(digests)  # taken once

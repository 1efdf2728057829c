"""End to end: whatever the file holds, `batchpay run` ends with a documented exit code.

Arbitrary bytes, damaged copies of a valid file and arbitrary cell values are written as .csv or
.xlsx and run through the real command (click's CliRunner, the embedded sandbox). The run never
shows a traceback or an internal error (exit 70), and a refused file never sends a request.
The same properties for ingest and validation alone live in tests/ingest and tests/validate.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from batchpay.errors import ExitCode
from batchpay.testing import HEADERS, payout_row
from tests.ingest.helpers import xlsx_bytes

from .corpus import csv_text, payout_sheet
from .spy import CliRun, invoke, journal_runs, no_traceback

# A run that was accepted may end 0, 1 or 10; a refused file ends 3 or 4. Nothing else (no 2,
# no 70) may come out of a file's contents.
ACCEPTED = {ExitCode.OK, ExitCode.ROWS_FAILED, ExitCode.INCOMPLETE}
REFUSED = {ExitCode.INPUT_UNREADABLE, ExitCode.VALIDATION_FAILED}
E2E = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

VALID_CSV = csv_text().encode()
VALID_XLSX = xlsx_bytes([payout_sheet()])


def run_file(data: bytes, name: str) -> tuple[CliRun, int]:
    """`batchpay run NAME` in a fresh home; the run and how many runs the journal holds."""
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        path = home / name
        path.write_bytes(data)
        done = invoke(home, ["run", str(path)])
        return done, journal_runs(home)


def assert_documented(done: CliRun, runs: int) -> None:
    """A documented ending: refused with nothing sent and no run, or accepted."""
    assert no_traceback(done.output), done.output
    assert done.exit_code in REFUSED | ACCEPTED, done.output
    if done.exit_code in REFUSED:
        assert done.requests.requests == [], done.requests.lines
        assert runs == 0
        assert "error: " in done.stderr


def assert_refused(done: CliRun, runs: int) -> None:
    """Refused (exit 3 or 4) with nothing sent."""
    assert_documented(done, runs)
    assert done.exit_code in REFUSED, done.output


def damaged(valid: bytes, seed: int, edits: list[tuple[int, int]]) -> bytes:
    """``valid`` with bytes overwritten, inserted or deleted at random places."""
    data = bytearray(valid)
    rng = random.Random(seed)
    for kind, value in edits:
        at = rng.randrange(len(data))
        if kind == 0:
            data[at] = value
        elif kind == 1:
            data.insert(at, value)
        elif len(data) > 1:
            del data[at]
    return bytes(data)


edits = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 255)), min_size=1, max_size=6)


@E2E
@given(data=st.binary(max_size=4096), name=st.sampled_from(["pay.csv", "pay.xlsx", "pay.txt"]))
@example(data=b"", name="pay.csv")
@example(data=b"PK\x03\x04" + bytes(60), name="pay.xlsx")
@example(data=b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), name="pay.csv")
@example(data=b"\xff\xfe" + "reference\r\n".encode("utf-16-le"), name="pay.csv")
def test_arbitrary_bytes_are_refused_without_a_request(data: bytes, name: str) -> None:
    """Random bytes under a CSV or XLSX name: exit 3 or 4, no traceback, no request, no run."""
    assert_refused(*run_file(data, name))


@E2E
@given(seed=st.integers(0), changes=edits)
def test_damaged_csv_ends_with_a_documented_exit_code(
    seed: int, changes: list[tuple[int, int]]
) -> None:
    """A valid CSV with bytes changed is paid or refused; a refusal sends nothing."""
    assert_documented(*run_file(damaged(VALID_CSV, seed, changes), "pay.csv"))


@E2E
@given(seed=st.integers(0), changes=edits)
def test_damaged_xlsx_ends_with_a_documented_exit_code(
    seed: int, changes: list[tuple[int, int]]
) -> None:
    """A valid workbook with bytes changed is paid or refused; a refusal sends nothing."""
    assert_documented(*run_file(damaged(VALID_XLSX, seed, changes), "pay.xlsx"))


any_cell = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
some_cells = st.dictionaries(st.sampled_from(HEADERS), any_cell, min_size=1, max_size=6)


@E2E
@given(cells=some_cells, xlsx=st.booleans())
@example(cells={"amount": "1e3", "iban": "DE89 3704 0044 0532 0130 00\u00a0"}, xlsx=False)
@example(cells={"reference": "=1+1", "currency": "eur"}, xlsx=True)
def test_arbitrary_cell_values_end_with_a_documented_exit_code(
    cells: dict[str, str], xlsx: bool
) -> None:
    """Any text in any cell of a row, in a CSV or a workbook: paid or refused, never a crash."""
    rows = [payout_row(0, **cells), payout_row(1)]
    if xlsx:
        data, name = xlsx_bytes([payout_sheet(rows)]), "pay.xlsx"
    else:
        data, name = csv_text(rows).encode("utf-8", "surrogatepass"), "pay.csv"
    assert_documented(*run_file(data, name))

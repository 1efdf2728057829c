"""The CSV, totals CSV and JSON files, and how write_report writes them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from batchpay.errors import ExitCode, ReportError
from batchpay.report import ReportPaths, load_report, write_report
from batchpay.report.files import report_json

from .conftest import MakeReport
from .samples import RAW_ACCOUNT

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline="")))


@pytest.fixture
def paths(make_report: MakeReport, tmp_path: Path) -> ReportPaths:
    """The sample report written to a fresh folder."""
    return write_report(make_report(), tmp_path / "out", "run_1")


def test_write_report_names_its_files(paths: ReportPaths, tmp_path: Path) -> None:
    """The four files sit under out_dir with the stem, and no temporary file is left."""
    out = tmp_path / "out"
    assert paths == ReportPaths(
        csv=out / "run_1.csv",
        totals_csv=out / "run_1-totals.csv",
        xlsx=out / "run_1.xlsx",
        json=out / "run_1.json",
    )
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)


def test_csv_has_bom_and_friendly_headers(paths: ReportPaths) -> None:
    """The CSV starts with a UTF-8 BOM and a header row of friendly names."""
    raw = paths.csv.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfRow,Reference,Outcome,Needs attention,")
    header = next(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert header[-3:] == ["Request ID", "Idempotency key", "Attempt"]
    assert "Zoë Müller".encode() in raw  # accents as UTF-8


def test_csv_rows_needing_a_person_come_first(paths: ReportPaths) -> None:
    """One CSV line per input row, attention rows first, then by row number."""
    lines = _read_csv(paths.csv)
    assert [line["Row"] for line in lines] == ["3", "5", "6", "8", "9", "10", "2", "4", "7"]
    assert [line["Needs attention"] for line in lines] == ["yes"] * 6 + [""] * 3


def test_csv_amounts_are_plain_decimal_strings(paths: ReportPaths) -> None:
    """Amounts keep their currency's scale, with no separators and no rounding."""
    by_row = {line["Row"]: line for line in _read_csv(paths.csv)}
    assert by_row["2"]["Amount"] == "1234.50"
    assert by_row["2"]["Exchange rate"] == "0.914367"
    assert by_row["2"]["Total debited"] == "1352.62"
    assert by_row["2"]["Debited currency"] == "USD"
    assert by_row["4"]["Amount"] == "150000"  # JPY: no decimals
    assert by_row["5"]["Amount"] == "12.345"  # KWD: three
    assert by_row["10"]["Amount"] == "5.125"  # unknown currency: digits kept, not rounded
    assert by_row["9"]["Amount"] == ""


def test_csv_text_cells_are_neutralised(paths: ReportPaths) -> None:
    """Text starting with = + - @ or a tab gets a leading quote; nothing else changes."""
    by_row = {line["Row"]: line for line in _read_csv(paths.csv)}
    assert by_row["3"]["Reference"] == "'=cmd|' /C calc'!A0"
    assert by_row["3"]["Beneficiary ref"] == "'+EMP-002"
    assert by_row["3"]["Beneficiary name"] == "'@Evil Corp"
    assert by_row["3"]["Error message"] == "'-The beneficiary's account is closed"
    assert by_row["8"]["Beneficiary name"] == "'\tTab Name"
    assert by_row["5"]["Beneficiary name"] == "Ahmed Al-Sabah"
    for line in _read_csv(paths.csv):
        assert not any(v.startswith(FORMULA_STARTS) for v in line.values())


def test_no_file_holds_an_unmasked_account(paths: ReportPaths) -> None:
    """Only the masked account appears, in every file."""
    for path in (paths.csv, paths.totals_csv, paths.json):
        text = path.read_text(encoding="utf-8-sig")
        assert RAW_ACCOUNT not in text and "0532013000" not in text
    by_row = {line["Row"]: line for line in _read_csv(paths.csv)}
    assert by_row["3"]["Account (masked)"] == "****3000"


def test_totals_csv_one_line_per_currency(paths: ReportPaths) -> None:
    """The totals CSV has every currency with counts, exact amounts and the checks."""
    lines = {line["Currency"]: line for line in _read_csv(paths.totals_csv)}
    assert list(lines) == ["EUR", "JPY", "KWD", "USD", "XYZ"]
    eur = lines["EUR"]
    assert (eur["Requested rows"], eur["Requested amount"]) == ("3", "2478.95")
    assert (eur["Submitted rows"], eur["Submitted amount"]) == ("2", "1244.45")
    assert (eur["Failed or returned rows"], eur["Failed or returned amount"]) == ("1", "9.95")
    assert (eur["Declared rows"], eur["Declared amount"]) == ("3", "2478.95")
    assert (eur["Adds up"], eur["Matches declared"]) == ("yes", "yes")
    assert lines["USD"]["Requested amount"] == "100000000.06"
    assert lines["USD"]["Total debited"] == "1352.62"
    assert lines["JPY"]["Pending amount"] == "150000"
    assert lines["KWD"]["Fees"] == "0.000"
    assert lines["XYZ"]["Matches declared"] == ""


def test_json_layout(paths: ReportPaths) -> None:
    """The JSON is run, totals, rows; amounts are strings; rows in file order."""
    data = json.loads(paths.json.read_text(encoding="utf-8"))
    assert list(data) == ["run", "totals", "rows"]
    assert data["run"]["generated_at"] == "2025-03-14T09:26:53Z"
    assert data["run"]["environment"] == "sandbox"
    assert data["run"]["declared_totals"] == {"EUR": {"count": 3, "amount": "2478.95"}}
    assert [r["row"] for r in data["rows"]] == list(range(2, 11))
    first = data["rows"][0]
    assert list(first)[:3] == ["row", "outcome", "reference"]
    assert (first["amount"], first["fee"], first["exchange_rate"]) == (
        "1234.50",
        "2.50",
        "0.914367",
    )
    eur = data["totals"]["by_currency"]["EUR"]
    assert eur["completed"] == {"count": 1, "amount": "1234.50"}
    assert data["totals"]["adds_up"] is True
    assert data["totals"]["by_outcome"]["invalid"] == 2
    assert data["totals"]["rows_needing_attention"] == 6


def test_load_report_reads_the_json_back(make_report: MakeReport, paths: ReportPaths) -> None:
    """load_report gives back the report that was written."""
    assert load_report(paths.json) == make_report()


def test_writing_again_replaces_the_files(make_report: MakeReport, paths: ReportPaths) -> None:
    """A second write over the same stem replaces each file and leaves no temporary file."""
    report = make_report(rows=make_report().rows[:1])
    again = write_report(report, paths.csv.parent, "run_1")
    assert again == paths
    assert len(_read_csv(again.csv)) == 1
    assert len(list(paths.csv.parent.iterdir())) == 4


def test_a_failed_write_keeps_the_old_files(
    make_report: MakeReport, paths: ReportPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the disk fills up mid-write: ReportError (exit 6), old files whole, no temp file."""
    before = {p: p.read_bytes() for p in paths}

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", disk_full)
    with pytest.raises(ReportError, match="the disk is full") as caught:
        write_report(make_report(rows=[]), paths.xlsx.parent, "run_1")
    assert caught.value.exit_code == ExitCode.CONFIG
    assert {p: p.read_bytes() for p in paths} == before
    assert len(list(paths.csv.parent.iterdir())) == 4


@pytest.mark.parametrize("stem", ["", "../escape", "a/b", ".hidden"])
def test_stem_must_be_a_plain_name(make_report: MakeReport, tmp_path: Path, stem: str) -> None:
    """A stem that is empty, hidden or a path is refused before anything is written."""
    with pytest.raises(ValueError, match="plain file name"):
        write_report(make_report(), tmp_path, stem)
    assert list(tmp_path.iterdir()) == []


def test_empty_report_files(make_report: MakeReport, tmp_path: Path) -> None:
    """A report without rows still writes headers, no totals lines, and valid JSON."""
    paths = write_report(make_report(rows=[]), tmp_path, "empty")
    assert _read_csv(paths.csv) == []
    assert paths.csv.read_text(encoding="utf-8-sig").startswith("Row,Reference,")
    assert _read_csv(paths.totals_csv) == []
    assert json.loads(paths.json.read_text(encoding="utf-8"))["rows"] == []


@pytest.mark.parametrize("rows", ["sample", "none"])
def test_report_json_is_exactly_json_dumps_with_indent(make_report: MakeReport, rows: str) -> None:
    """The fast JSON writer gives byte for byte what json.dumps(indent=2) gives."""
    doc = make_report(rows=None if rows == "sample" else []).to_dict()
    assert report_json(doc) == json.dumps(doc, ensure_ascii=False, indent=2)
    odd = {**doc, "rows": [{"a": 'x\n\u2028"\\', "b": None, "c": 1}, {}]}
    assert report_json(odd) == json.dumps(odd, ensure_ascii=False, indent=2)

    # Rows that are not flat (a nested object or list, of a subclass too; a row not an
    # object) take json.dumps's own way, indenting what they nest.
    class Sub(dict[str, Any]):
        pass

    for nested in ({"n": {"x": 1}}, {"n": [1, 2]}, {"n": Sub(x=1)}, {"n": (1, 2)}):
        deep = {**doc, "rows": [{"a": 1}, nested]}
        assert report_json(deep) == json.dumps(deep, ensure_ascii=False, indent=2)
    listed = {**doc, "rows": [{"a": 1}, [1, 2]]}
    assert report_json(listed) == json.dumps(listed, ensure_ascii=False, indent=2)


def test_the_workbook_writer_is_imported_in_a_thread_once() -> None:
    """``preload_writer`` imports openpyxl and the workbook writer in a thread of its own (in a
    fresh interpreter), and does nothing once they are imported."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from batchpay.report import files\n"
        "assert 'openpyxl' not in sys.modules\n"
        "t = files.preload_writer()\n"
        "assert t is not None and t.name == 'preload-report'\n"
        "t.join()\n"
        "assert 'openpyxl' in sys.modules and 'batchpay.report.xlsx' in sys.modules\n"
        "assert files.preload_writer() is None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)

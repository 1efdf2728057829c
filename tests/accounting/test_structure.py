"""Title rows above the header and totals rows below the payouts, in CSV and XLSX files."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import Workbook

from batchpay import pipeline
from batchpay.errors import InputError, ValidationFailed
from batchpay.options import RunOptions
from batchpay.testing import HEADERS, payout_row, sandbox_settings

AMOUNT = HEADERS.index("amount")


def _rows() -> list[dict[str, str]]:
    return [payout_row(i) for i in (0, 3, 6)]  # three EUR IBAN rows


def _csv(path: Path, lines: list[list[str]]) -> Path:
    path.write_text("".join(",".join(line) + "\n" for line in lines), encoding="utf-8")
    return path


def _xlsx(path: Path, lines: list[list[str]]) -> Path:
    wb = Workbook()
    ws = wb.active
    for line in lines:
        ws.append([v if v != "" else None for v in line])
    wb.save(path)
    return path


def _line(*cells: str) -> list[str]:
    return list(cells) + [""] * (len(HEADERS) - len(cells))


def _total(label: str, amount: str, currency: str = "") -> list[str]:
    line = [""] * len(HEADERS)
    line[0], line[AMOUNT] = label, amount
    if currency:
        line[HEADERS.index("currency")] = currency
    return line


def _body() -> list[list[str]]:
    return [HEADERS] + [[r[h] for h in HEADERS] for r in _rows()]


def _sum() -> Decimal:
    return sum((Decimal(r["amount"]) for r in _rows()), Decimal(0))


def _plan(tmp_path: Path, f: Path, layout: str | None = None) -> pipeline.Plan:
    options = RunOptions(out_dir=tmp_path / "r")
    if layout is not None:
        path = tmp_path / "layout.toml"
        path.write_text(layout, encoding="utf-8")
        options = RunOptions(out_dir=tmp_path / "r", layout_path=path)
    return pipeline.plan(f, settings=sandbox_settings(tmp_path), options=options)


WRITERS = {"csv": _csv, "xlsx": _xlsx}


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_title_rows_are_named_and_refused_by_default(tmp_path: Path, kind: str) -> None:
    """A title and a blank line above the header: refused naming the header's row, with the
    layout key that skips them in the hint (not "missing required column(s)")."""
    lines = [_line("Payroll March 2026"), _line(), *_body()]
    f = WRITERS[kind](tmp_path / f"t.{kind}", lines)
    with pytest.raises(InputError) as info:
        _plan(tmp_path, f)
    err = info.value
    assert err.code == "title_rows" and err.row == 3
    assert "the header row is row 3, not row 1" in err.message
    assert "'Payroll March 2026'" in err.message
    assert err.hint is not None and "skip_title_rows = true" in err.hint


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_title_rows_skipped_when_the_layout_allows(tmp_path: Path, kind: str) -> None:
    """With skip_title_rows the rows below the header are read, and the title is reported."""
    lines = [_line("ACME Ltd"), _line("Payroll March 2026"), *_body()]
    f = WRITERS[kind](tmp_path / f"t.{kind}", lines)
    plan = _plan(tmp_path, f, "[file]\nskip_title_rows = true\n")
    assert (plan.rows, plan.rows_to_pay, plan.issues) == (3, 3, [])
    assert plan.notes[:2] == [
        "row 1: a title above the header (row 3), skipped: 'ACME Ltd'",
        "row 2: a title above the header (row 3), skipped: 'Payroll March 2026'",
    ]


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_a_totals_row_is_recognised_not_ten_blank_cells(tmp_path: Path, kind: str) -> None:
    """A trailing TOTAL row is reported as a totals row and not paid; no "is blank" issues."""
    lines = [*_body(), _total("TOTAL", f"{_sum()}")]
    f = WRITERS[kind](tmp_path / f"t.{kind}", lines)
    plan = _plan(tmp_path, f)
    assert (plan.rows, plan.rows_to_pay, plan.issues) == (3, 3, [])
    assert plan.notes == [f"row 5: a totals row ('TOTAL', {_sum()}), not a payout"]


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_a_totals_row_is_checked_when_asked(tmp_path: Path, kind: str) -> None:
    """check_total_row: a totals row that disagrees with the rows refuses the file (exit 4)."""
    wrong = _sum() + Decimal("0.01")
    f = WRITERS[kind](tmp_path / f"t.{kind}", [*_body(), _total("Grand total", f"{wrong}")])
    plan = _plan(tmp_path, f, "[file]\ncheck_total_row = true\n")
    (issue,) = plan.issues
    assert (issue.row, issue.code) == (5, "total_row_mismatch")
    assert f"says {wrong} but the 3 row(s) above sum to {_sum()}" in issue.message
    right = WRITERS[kind](tmp_path / f"ok.{kind}", [*_body(), _total("Grand total", f"{_sum()}")])
    assert _plan(tmp_path, right, "[file]\ncheck_total_row = true\n").issues == []


def test_totals_rows_per_currency_are_each_checked(tmp_path: Path) -> None:
    """A totals row per currency is checked against that currency's rows only."""
    usd = payout_row(1)
    lines = [*_body(), [usd[h] for h in HEADERS]]
    lines += [_total("Total", f"{_sum()}", "EUR"), _total("Total", "1.00", "USD")]
    f = _csv(tmp_path / "t.csv", lines)
    plan = _plan(tmp_path, f, "[file]\ncheck_total_row = true\n")
    (issue,) = plan.issues
    assert issue.row == 7 and f"above sum to {usd['amount']}" in issue.message
    assert plan.rows == 4


def test_without_the_key_a_wrong_total_is_only_reported(tmp_path: Path) -> None:
    """Unchecked, a totals row is never paid and never refuses the file."""
    f = _csv(tmp_path / "t.csv", [*_body(), _total("Totals", "1.00")])
    plan = _plan(tmp_path, f)
    assert plan.issues == [] and plan.rows_to_pay == 3


def test_a_payee_labelled_total_is_still_a_payout(tmp_path: Path) -> None:
    """A row that holds a payee is a payout, whatever its first cell says."""
    row = payout_row(9, reference="Total Energies 2026-03")
    lines = [HEADERS, *[[r[h] for h in HEADERS] for r in _rows()], [row[h] for h in HEADERS]]
    plan = _plan(tmp_path, _csv(tmp_path / "t.csv", lines))
    assert plan.rows_to_pay == 4 and plan.notes == []


def test_an_unknown_header_is_still_named_as_such(tmp_path: Path) -> None:
    """Headers the layout does not know (no row below names the columns): the old refusal."""
    f = _xlsx(tmp_path / "t.xlsx", [["Betrag", "Währung", "Empfänger"], ["1", "EUR", "x"]])
    with pytest.raises(InputError) as info:
        _plan(tmp_path, f)
    assert info.value.code == "missing_columns" and "'Betrag'" in info.value.message


def test_run_refuses_a_wrong_totals_row_before_sending(tmp_path: Path) -> None:
    """run, like validate: a checked totals row that disagrees refuses the file (exit 4)."""
    f = _csv(tmp_path / "t.csv", [*_body(), _total("TOTAL", "1.00")])
    layout = tmp_path / "layout.toml"
    layout.write_text("[file]\ncheck_total_row = true\n", encoding="utf-8")
    with pytest.raises(ValidationFailed):
        pipeline.run(
            f,
            settings=sandbox_settings(tmp_path),
            options=RunOptions(out_dir=tmp_path / "r", layout_path=layout),
        )


@pytest.mark.parametrize("skip", [False, True])
def test_an_xlsx_title_block_of_three_cells_above_the_header(tmp_path: Path, skip: bool) -> None:
    """A title row filling three cells (company, date, "Payouts") and a second title line:
    the header is still found by its aliases; refused naming it, or skipped when allowed."""
    lines = [["ACME Ltd", "2026-12-01", "Payouts"], ["Company", "ACME Ltd", "EUR"], *_body()]
    f = _xlsx(tmp_path / "t.xlsx", lines)
    if not skip:
        with pytest.raises(InputError) as info:
            _plan(tmp_path, f)
        assert (info.value.code, info.value.row) == ("title_rows", 3)
        assert "row(s) 1, 2 above it look like a title ('ACME Ltd 2026-12-01 Payouts')" in (
            info.value.message
        )
        return
    plan = _plan(tmp_path, f, "[file]\nskip_title_rows = true\n")
    assert (plan.rows, plan.rows_to_pay, plan.issues) == (3, 3, [])
    assert plan.notes[:2] == [
        "row 1: a title above the header (row 3), skipped: 'ACME Ltd 2026-12-01 Payouts'",
        "row 2: a title above the header (row 3), skipped: 'Company ACME Ltd EUR'",
    ]


@pytest.mark.parametrize("skip", [False, True])
def test_a_csv_title_line_without_separators(tmp_path: Path, skip: bool) -> None:
    """`Payout run December 2026` as line 1, no commas: a title, not a ragged-row refusal."""
    f = tmp_path / "t.csv"
    body = "".join(",".join(line) + "\r\n" for line in _body())
    f.write_bytes(("\ufeffPayout run December 2026\r\n\r\n" + body).encode("utf-8"))
    if not skip:
        with pytest.raises(InputError) as info:
            _plan(tmp_path, f)
        assert (info.value.code, info.value.row) == ("title_rows", 3)
        assert "look like a title ('Payout run December 2026')" in info.value.message
        return
    plan = _plan(tmp_path, f, "[file]\nskip_title_rows = true\n")
    assert (plan.rows, plan.rows_to_pay, plan.issues) == (3, 3, [])
    assert plan.notes[0] == (
        "row 1: a title above the header (row 3), skipped: 'Payout run December 2026'"
    )


def test_a_ragged_row_below_a_title_line_is_still_named(tmp_path: Path) -> None:
    """Padding a title line changes nothing below the header: a short row keeps its row."""
    lines = [",".join(line) for line in _body()]
    lines[2] = lines[2].rsplit(",", 1)[0]  # the second payout loses its last field
    f = tmp_path / "t.csv"
    f.write_text("Payouts\n" + "\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        _plan(tmp_path, f, "[file]\nskip_title_rows = true\n")
    assert info.value.code == "ragged_row" and info.value.row == 4


def test_a_header_lacking_a_column_below_many_rows_is_named(tmp_path: Path) -> None:
    """No row of the first ones names every column: the one naming most is the header, and
    the refusal names what it lacks (not a title, not a data row taken as the header)."""
    header = [h for h in HEADERS if h != "currency"]
    data = [[r[h] for h in header] for r in [payout_row(i) for i in range(12)]]
    f = _xlsx(tmp_path / "t.xlsx", [["Payouts"], header, *data])
    with pytest.raises(InputError) as info:
        _plan(tmp_path, f)
    assert info.value.code == "missing_columns" and "currency" in info.value.message

"""Duplicates inside one file: refused by default, paid once or per payee only when asked."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchpay import pipeline
from batchpay.cli import main
from batchpay.config import Settings
from batchpay.errors import ExitCode, ValidationFailed
from batchpay.journal import Journal
from batchpay.sandbox import Sandbox, SandboxConfig

from .conftest import payee, run_kwargs, write_csv

REPEAT = "repeated_row"
CONFLICT = "conflicting_repeat"
SHARED_REF = "reference_for_other_payee"


def _repeat() -> list[dict[str, str]]:
    """Row 4 is row 2 again, cell for cell."""
    return [payee(0), payee(1), payee(0)]


def _conflict() -> list[dict[str, str]]:
    """Rows 2 and 3: same reference and payee, other amount and other IBAN."""
    return [payee(0), payee(0, amount="999.00", iban="NL91ABNA0417164300")]


def _shared_reference() -> list[dict[str, str]]:
    """Rows 2 and 3: one reference for two payees."""
    return [payee(0), payee(3, reference=payee(0)["reference"])]


CASES = {
    "repeat": (_repeat, {4: REPEAT}),
    "conflict": (_conflict, {2: CONFLICT, 3: CONFLICT}),
    "shared-reference": (_shared_reference, {2: SHARED_REF, 3: SHARED_REF}),
}


def _codes(error: ValidationFailed) -> dict[int, str]:
    return {i.row: i.code for i in error.issues}


# -- the library, against the in-process sandbox ----------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("case", list(CASES))
async def test_run_refuses_each_duplicate_case_and_sends_nothing(
    sandbox: Sandbox, settings: Settings, tmp_path: Path, case: str
) -> None:
    """By default each kind of duplicate refuses the file (exit 4): no run, no payout."""
    build, expected = CASES[case]
    f = write_csv(tmp_path / "d.csv", build())
    with pytest.raises(ValidationFailed) as info:
        await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert info.value.exit_code == ExitCode.VALIDATION_FAILED
    assert _codes(info.value) == expected
    assert sandbox.ledger() == []
    with Journal(settings.journal_path) as j:
        assert j.list_runs() == []


@pytest.mark.parametrize("case", list(CASES))
def test_plan_refuses_each_duplicate_case_naming_both_rows(
    settings: Settings, tmp_path: Path, case: str
) -> None:
    """`validate` lists each duplicate as an issue naming the other row and the payout."""
    build, expected = CASES[case]
    rows = build()
    p = pipeline.plan(write_csv(tmp_path / "d.csv", rows), settings=settings)
    assert {i.row: i.code for i in p.issues} == expected
    reference = rows[0]["reference"]
    for issue in p.issues:
        other = {2: 4, 4: 2}[issue.row] if case == "repeat" else 5 - issue.row
        assert f"row {other}" in issue.message and f"'{reference}'" in issue.message


def test_conflict_names_the_columns_and_never_the_bank_details(
    settings: Settings, tmp_path: Path
) -> None:
    """Same reference and payee with other details: the amounts and the column names, no IBAN."""
    rows = _conflict()
    p = pipeline.plan(write_csv(tmp_path / "d.csv", rows), settings=settings)
    first, second = (i.message for i in p.issues)
    assert "same reference 'INV-2026-1000' and payee 'V-0000' as row 3" in first
    assert "different amount (100.00 here, 999.00 on row 3) and iban" in first
    assert "nobody can tell which row is right" in first and "--skip-invalid skips both" in first
    assert "as row 2" in second
    for text in (first, second):
        for row in rows:
            assert row["iban"] not in text and row["iban"][-6:] not in text


def test_shared_reference_names_both_payees(settings: Settings, tmp_path: Path) -> None:
    """One reference for two payees names the other row's payee and the way out."""
    p = pipeline.plan(write_csv(tmp_path / "d.csv", _shared_reference()), settings=settings)
    first, second = p.issues
    assert first.column == "reference"
    assert "'INV-2026-1000' is also the reference on row 3 for payee 'V-0003'" in first.message
    assert "this row's payee is 'V-0000'" in first.message
    assert "--reference-per-payee" in first.message
    assert "row 2 for payee 'V-0000'" in second.message


def test_payee_and_reference_compare_ignoring_case_and_spaces(
    settings: Settings, tmp_path: Path
) -> None:
    """' inv-2026-1000 ' for 'v-0003' is the same reference as INV-2026-1000, another payee."""
    rows = [payee(0), payee(3, reference=" inv-2026-1000 ")]
    p = pipeline.plan(write_csv(tmp_path / "d.csv", rows), settings=settings)
    assert {i.row: i.code for i in p.issues} == {2: SHARED_REF, 3: SHARED_REF}


@pytest.mark.anyio
async def test_allow_repeats_pays_a_repeat_once(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """allow_repeats: the copy is reported duplicate_in_file, the payout is made once."""
    f = write_csv(tmp_path / "d.csv", _repeat())
    result = await pipeline.run_async(
        f, **run_kwargs(sandbox, settings, tmp_path, allow_repeats=True)
    )
    assert result.exit_code == ExitCode.OK
    outcomes = {r.row: r.outcome for r in result.report.rows}
    assert outcomes == {2: "pending", 3: "pending", 4: "duplicate_in_file"}
    assert sorted(p["reference"] for p in sandbox.ledger()) == ["INV-2026-1000", "INV-2026-1001"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("case", "options"),
    [
        ("conflict", {"allow_repeats": True}),
        ("conflict", {"allow_repeats": True, "reference_per_payee": True}),
        ("shared-reference", {"allow_repeats": True}),
        ("repeat", {"reference_per_payee": True}),
    ],
)
async def test_each_option_still_refuses_what_it_does_not_allow(
    sandbox: Sandbox, settings: Settings, tmp_path: Path, case: str, options: dict[str, bool]
) -> None:
    """Different details are always refused; each option allows its own case only."""
    build, expected = CASES[case]
    f = write_csv(tmp_path / "d.csv", build())
    with pytest.raises(ValidationFailed) as info:
        await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path, **options))
    assert _codes(info.value) == expected
    assert sandbox.ledger() == []


@pytest.mark.anyio
async def test_reference_per_payee_pays_each_payee(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """reference_per_payee: one invoice number for two suppliers is two payouts."""
    f = write_csv(tmp_path / "d.csv", _shared_reference())
    result = await pipeline.run_async(
        f, **run_kwargs(sandbox, settings, tmp_path, reference_per_payee=True)
    )
    assert result.exit_code == ExitCode.OK
    assert sorted(p["reference"] for p in sandbox.ledger()) == ["INV-2026-1000"] * 2
    assert len({p["beneficiary_id"] for p in sandbox.ledger()}) == 2


def _layout_allowing(tmp_path: Path, *keys: str) -> Path:
    from importlib import resources

    text = resources.files("batchpay").joinpath("data/layout.toml").read_text("utf-8")
    for key in keys:
        assert f"{key} = false" in text
        text = text.replace(f"{key} = false", f"{key} = true")
    path = tmp_path / "layout.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.anyio
async def test_layout_allows_and_the_run_option_overrides_it(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """[duplicates] allow_repeats = true pays a repeat once; allow_repeats=False still refuses."""
    layout = _layout_allowing(tmp_path, "allow_repeats")
    f = write_csv(tmp_path / "d.csv", _repeat())
    with pytest.raises(ValidationFailed):
        await pipeline.run_async(
            f, **run_kwargs(sandbox, settings, tmp_path, layout_path=layout, allow_repeats=False)
        )
    assert sandbox.ledger() == []
    result = await pipeline.run_async(
        f, **run_kwargs(sandbox, settings, tmp_path, layout_path=layout)
    )
    assert [r.outcome for r in result.report.rows].count("duplicate_in_file") == 1
    assert len(sandbox.ledger()) == 2


@pytest.mark.anyio
async def test_skip_invalid_leaves_out_every_row_of_a_refused_duplicate(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """--skip-invalid pays the first of a repeat, neither of a conflict, none of a shared ref."""
    rows = [
        payee(0),  # row 2: paid
        payee(1),  # row 3: paid
        payee(0),  # row 4: repeat of row 2, not paid
        payee(2),  # row 5: conflict with row 6, not paid
        payee(2, amount="555.00"),  # row 6
        payee(4),  # row 7: shares its reference with row 8, not paid
        payee(5, reference=payee(4)["reference"]),  # row 8
        payee(6),  # row 9: paid
    ]
    f = write_csv(tmp_path / "d.csv", rows)
    result = await pipeline.run_async(
        f, **run_kwargs(sandbox, settings, tmp_path, skip_invalid=True)
    )
    by_row = {r.row: r for r in result.report.rows}
    assert {n for n, r in by_row.items() if r.outcome == "pending"} == {2, 3, 9}
    assert {n: r.error_code for n, r in by_row.items() if r.outcome == "invalid"} == {
        4: REPEAT,
        5: CONFLICT,
        6: CONFLICT,
        7: SHARED_REF,
        8: SHARED_REF,
    }
    assert "--skip-invalid pays row 2 and not this copy" in by_row[4].error_message
    assert "--skip-invalid skips both" in by_row[5].error_message
    assert sorted(p["reference"] for p in sandbox.ledger()) == sorted(
        rows[i]["reference"] for i in (0, 1, 7)
    )


@pytest.mark.anyio
async def test_skip_invalid_refuses_a_file_of_nothing_but_conflicts(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """When every row is a refused duplicate there is nothing to pay: refused, nothing sent."""
    f = write_csv(tmp_path / "d.csv", _conflict())
    with pytest.raises(ValidationFailed):
        await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path, skip_invalid=True))
    assert sandbox.ledger() == []


@pytest.mark.anyio
async def test_plan_totals_are_what_a_run_would_pay(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """Totals and counts leave out invalid rows, refused duplicates, repeats and paid rows."""
    await pipeline.run_async(
        write_csv(tmp_path / "earlier.csv", [payee(6)]), **run_kwargs(sandbox, settings, tmp_path)
    )
    rows = [
        payee(0),  # row 2: EUR 100.00, paid
        payee(0),  # row 3: repeat of row 2
        payee(3),  # row 4: EUR 103.21, paid
        payee(9, amount="12,50"),  # row 5: invalid
        payee(6),  # row 6: paid by the earlier run
        payee(12),  # row 7: EUR, conflicts with row 8
        payee(12, amount="1.00"),  # row 8
    ]
    f = write_csv(tmp_path / "d.csv", rows)
    repeats = pipeline.plan(f, settings=settings, options=pipeline.RunOptions(allow_repeats=True))
    assert (repeats.rows, repeats.valid_rows, repeats.rows_to_pay) == (7, 4, 2)
    assert repeats.totals == {"EUR": Decimal("203.21")}
    assert repeats.by_method == {"iban": 2}
    assert (repeats.new_beneficiaries, repeats.already_paid) == (2, 1)
    assert [(d.row, d.first_row) for d in repeats.duplicates_in_file] == [(3, 2)]
    refused = pipeline.plan(f, settings=settings)
    assert (refused.valid_rows, refused.rows_to_pay) == (3, 2)
    assert refused.totals == repeats.totals
    assert {i.row for i in refused.issues} == {3, 5, 7, 8}


# -- the command line, against the embedded sandbox -------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An isolated working directory with no batchpay configuration in the environment."""
    for key in list(os.environ):
        if key.startswith("BATCHPAY_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("BATCHPAY_HOME", str(tmp_path / ".batchpay"))
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def _embedded_ledger(home: Path) -> list[dict[str, object]]:
    """The payouts the embedded sandbox of the CLI runs in ``home`` created."""
    sb = Sandbox(SandboxConfig(state_path=str(home / ".batchpay" / "sandbox-state.db")))
    try:
        return sb.ledger()
    finally:
        asyncio.run(sb.aclose())


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("case", list(CASES))
def test_cli_exits_4_for_each_duplicate_case(home: Path, command: str, case: str) -> None:
    """`validate` and `run` exit 4, list each duplicate with its rows, and send nothing."""
    build, expected = CASES[case]
    f = write_csv(home / "d.csv", build())
    result = CliRunner().invoke(main, [command, str(f)])
    assert result.exit_code == ExitCode.VALIDATION_FAILED, result.output
    for row in expected:
        assert f"  row {row}" in result.stderr
    assert "nothing was sent" in result.stderr and "Traceback" not in result.output
    assert _embedded_ledger(home) == []
    assert "no runs yet" in CliRunner().invoke(main, ["runs"]).stdout


def test_cli_validate_allow_repeats_prints_what_would_be_paid(home: Path) -> None:
    """`validate --allow-repeats` exits 0 and totals the payouts to make, not the copy."""
    f = write_csv(home / "d.csv", [payee(0), payee(3), payee(0)])
    result = CliRunner().invoke(main, ["validate", str(f), "--allow-repeats"])
    assert result.exit_code == 0, result.output
    assert "d.csv: 3 rows, 3 valid, 2 to pay" in result.stdout
    assert "  total EUR 203.21\n" in result.stdout
    assert "  row 4: same as row 2; paid once (duplicate_in_file)" in result.stdout


def test_cli_run_options_pay_what_they_allow(home: Path) -> None:
    """`run --allow-repeats` pays a repeat once; `run --reference-per-payee` pays each payee."""
    runner = CliRunner()
    repeat = write_csv(home / "repeat.csv", _repeat())
    assert runner.invoke(main, ["run", str(repeat), "--allow-repeats"]).exit_code == 0
    assert len(_embedded_ledger(home)) == 2
    shared_rows = [payee(10, reference="INV-SHARED-1"), payee(13, reference="INV-SHARED-1")]
    shared = write_csv(home / "shared.csv", shared_rows)
    refused = runner.invoke(main, ["run", str(shared), "--allow-repeats"])
    assert refused.exit_code == ExitCode.VALIDATION_FAILED
    paid = runner.invoke(main, ["run", str(shared), "--reference-per-payee"])
    assert paid.exit_code == 0, paid.output
    assert [p["reference"] for p in _embedded_ledger(home)].count("INV-SHARED-1") == 2


def test_cli_flag_overrides_the_layout(home: Path) -> None:
    """A layout allowing repeats is overridden by --refuse-repeats (exit 4)."""
    layout = _layout_allowing(home, "allow_repeats", "reference_per_payee")
    f = write_csv(home / "d.csv", _repeat())
    runner = CliRunner()
    allowed = runner.invoke(main, ["validate", str(f), "--layout", str(layout)])
    assert allowed.exit_code == 0, allowed.output
    refused = runner.invoke(main, ["validate", str(f), "--layout", str(layout), "--refuse-repeats"])
    assert refused.exit_code == ExitCode.VALIDATION_FAILED
    assert "row 4: repeats row 2 exactly" in refused.stderr

"""Amounts in a declared number format are read exactly; undeclared formats are refused by name."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from batchpay.cli import main
from batchpay.errors import ConfigError
from batchpay.ingest import read_bytes
from batchpay.layout import load_layout
from batchpay.money import NumberFormat, amount_problem
from batchpay.testing import HEADERS, payout_row
from batchpay.validate import validate_frame

COMMA_DOT = NumberFormat(",", (".",))
COMMA_SPACE = NumberFormat(",", (" ",))


def semicolon_csv(amounts: list[str], currency: str = "EUR") -> bytes:
    """A semicolon CSV of IBAN rows paying ``amounts``."""
    rows = []
    for i, amount in enumerate(amounts):
        row = payout_row(3 * i)  # i % 3 == 0: an IBAN row
        row.update(amount=amount, currency=currency)
        rows.append(";".join(row[h] for h in HEADERS))
    return (";".join(HEADERS) + "\n" + "\n".join(rows) + "\n").encode("utf-8")


def layout_file(tmp_path: Path, thousands: str = ".") -> Path:
    path = tmp_path / "layout.toml"
    path.write_text(
        f'[file]\ndelimiter = ";"\ndecimal_separator = ","\nthousands_separator = "{thousands}"\n',
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("text", "number", "plain"),
    [
        ("1.250,00", COMMA_DOT, "1250.00"),
        ("1250,5", COMMA_DOT, "1250.5"),
        ("1.234.567,89", COMMA_DOT, "1234567.89"),
        ("1 250,00", COMMA_SPACE, "1250.00"),
        ("1\u00a0250,00", COMMA_SPACE, "1250.00"),
        ("1\u202f250,00", COMMA_SPACE, "1250.00"),
        ("2,450.00", NumberFormat(".", (",",)), "2450.00"),
        ("980", COMMA_DOT, "980"),
    ],
)
def test_declared_formats_read_to_the_exact_plain_decimal(
    text: str, number: NumberFormat, plain: str
) -> None:
    """Each declared spelling gives the same digits as plain text, without any float."""
    assert number.plain(text) == plain
    assert amount_problem(text, "EUR", number) is None


@given(st.decimals(min_value="0.01", max_value="999999999999.99", places=2))
def test_every_amount_written_with_dots_and_a_comma_reads_back_exactly(amount: Decimal) -> None:
    """Writing any amount 1.234,50-style and reading it back gives the same Decimal."""
    plain = f"{amount:f}"
    whole, fraction = plain.split(".")
    grouped = f"{int(whole):,}".replace(",", ".")
    assert Decimal(COMMA_DOT.plain(f"{grouped},{fraction}") or "nan") == amount


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("€2,450.00", "a currency symbol €"),
        ("2.450,00 €", "a currency symbol €"),
        ("2,450.00", 'uses commas as thousands separators ("," between groups'),
        ("1.250,00", 'declare decimal_separator = ","'),
        ("1 250,00", 'thousands_separator = " "'),
        ("1250,00", "--decimal-comma"),
    ],
)
def test_undeclared_formats_are_refused_naming_what_was_seen(text: str, fragment: str) -> None:
    """With no declaration the plain form is required, and the message names the separator."""
    problem = amount_problem(text, "EUR")
    assert problem is not None and fragment in problem


def test_a_dot_decimal_in_a_decimal_comma_file_is_refused_not_guessed() -> None:
    """1250.50 where the layout says decimal comma is ambiguous: refused, naming the dot."""
    problem = amount_problem("1250.50", "EUR", COMMA_DOT)
    assert problem is not None and "a dot" in problem and "decimal separator ','" in problem


def test_a_semicolon_csv_with_decimal_comma_amounts_validates_exactly(tmp_path: Path) -> None:
    """The layout's delimiter and number format read 1.250,00 as the canonical 1250.00."""
    layout = load_layout(layout_file(tmp_path))
    data = semicolon_csv(["1.250,00", "980,5", "12.345.678,01", "1250.50"])
    result = validate_frame(read_bytes(data, "pay.csv", layout), layout)
    assert [(i.row, i.column, i.code) for i in result.issues] == [(5, "amount", "amount")]
    assert result.valid["amount"].to_list() == ["1250.00", "980.50", "12345678.01"]
    assert result.totals_by_currency() == {"EUR": Decimal("12347908.51")}


def test_bad_number_format_declarations_are_refused(tmp_path: Path) -> None:
    """A decimal separator other than . or , and a thousands separator equal to it are refused."""
    path = tmp_path / "l.toml"
    path.write_text('[file]\ndecimal_separator = ";"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="decimal_separator"):
        load_layout(path)
    path.write_text('[file]\ndecimal_separator = ","\nthousands_separator = ","\n', "utf-8")
    with pytest.raises(ConfigError, match="thousands_separator"):
        load_layout(path)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder, no layout in the environment."""
    monkeypatch.delenv("BATCHPAY_LAYOUT", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_semicolon_csv_with_decimal_comma_amounts_pays(workdir: Path) -> None:
    """`batchpay run` with the right layout pays 1.250,00 and 1 250,00 (embedded sandbox)."""
    layout = layout_file(workdir, thousands=" ")
    (workdir / "pay.csv").write_bytes(semicolon_csv(["1 250,00", "3 000,25"]))
    checked = CliRunner().invoke(main, ["validate", "pay.csv", "--layout", str(layout)])
    assert checked.exit_code == 0, checked.output
    assert "total EUR 4,250.25" in checked.stdout  # formatted as the report does
    paid = CliRunner().invoke(main, ["run", "pay.csv", "--layout", str(layout)])
    assert paid.exit_code == 0, paid.output


def test_decimal_comma_option_reads_dots_and_spaces_between_thousands(workdir: Path) -> None:
    """--decimal-comma with a layout that only sets the delimiter reads both spellings."""
    layout = workdir / "batchpay.toml"
    layout.write_text('[file]\ndelimiter = ";"\n', encoding="utf-8")
    (workdir / "pay.csv").write_bytes(semicolon_csv(["1.250,00", "1 250,50"]))
    refused = CliRunner().invoke(main, ["validate", "pay.csv"])
    assert refused.exit_code == 4 and "--decimal-comma" in refused.stderr
    result = CliRunner().invoke(main, ["validate", "pay.csv", "--decimal-comma"])
    assert result.exit_code == 0, result.output
    assert "total EUR 2,500.50" in result.stdout


def test_xlsx_number_cells_stay_numbers_in_a_decimal_comma_layout(tmp_path: Path) -> None:
    """A number cell is not re-read as 1.250 = 1250: only text cells follow the declaration."""
    import io

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(HEADERS)
    for i, amount in enumerate([1250.5, "1.250,50", "2,5"]):
        row = payout_row(3 * i)
        sheet.append([amount if h == "amount" else row[h] for h in HEADERS])
    data = io.BytesIO()
    book.save(data)
    path = tmp_path / "l.toml"
    path.write_text('[file]\ndecimal_separator = ","\nthousands_separator = "."\n', "utf-8")
    layout = load_layout(path)
    result = validate_frame(read_bytes(data.getvalue(), "pay.xlsx", layout), layout)
    assert result.issues == []
    assert result.valid["amount"].to_list() == ["1250.50", "1250.50", "2.50"]

"""The editable column layout: packaged copy, header matching, and refusing a bad layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchpay.errors import ConfigError
from batchpay.layout import CANONICAL_COLUMNS, DuplicateRules, header_key, load_layout

ROOT = Path(__file__).resolve().parents[2]
EDITABLE = ROOT / "schemas" / "layout.toml"
PACKAGED = ROOT / "batchpay" / "data" / "layout.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "layout.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_packaged_layout_is_identical_to_the_editable_one() -> None:
    """batchpay/data/layout.toml ships the same bytes as schemas/layout.toml."""
    assert PACKAGED.read_bytes() == EDITABLE.read_bytes()


def test_default_layout_has_every_canonical_column_in_order() -> None:
    """The packaged layout loads and covers the data contract's columns, in contract order."""
    layout = load_layout()
    assert layout.names == CANONICAL_COLUMNS
    edited = load_layout(EDITABLE)
    assert (edited.columns, edited.file, edited.limits) == (
        layout.columns,
        layout.file,
        layout.limits,
    )


def test_requirements_follow_the_api() -> None:
    """Always-required, per-type and per-method requirements are as the API needs them."""
    layout = load_layout()
    assert set(layout.always_required) == {
        "reference", "beneficiary_ref", "beneficiary_type", "email", "phone", "address_line1",
        "city", "postal_code", "country", "amount", "currency", "payment_method",
    }  # fmt: skip
    assert layout.column("first_name").required_when == {"beneficiary_type": {"individual"}}
    assert layout.column("registration_number").required_when == {"beneficiary_type": {"business"}}
    assert layout.column("sort_code").required_when == {"payment_method": {"uk_bank"}}
    assert layout.column("account_number").required_when == {
        "payment_method": {"us_bank", "uk_bank"}
    }
    assert layout.column("reference").max_length == 100
    assert layout.column("description").optional
    assert layout.default_purpose == "contractor_payment"


def test_file_options_and_limits_have_documented_defaults() -> None:
    """Comma, UTF-8, first visible sheet, 512 MiB, one million rows."""
    layout = load_layout()
    assert (layout.file.delimiter, layout.file.encoding, layout.file.sheet) == (",", "utf-8", None)
    assert layout.limits.max_file_bytes == 512 * 1024 * 1024
    assert layout.limits.max_rows == 1_000_000


def test_duplicates_are_refused_by_default_and_the_layout_can_allow_them(tmp_path: Path) -> None:
    """[duplicates] defaults to refusing repeats and shared references; each can be turned on."""
    assert load_layout().duplicates == DuplicateRules(
        allow_repeats=False, reference_per_payee=False
    )
    text = (
        EDITABLE.read_text("utf-8")
        .replace("allow_repeats = false", "allow_repeats = true")
        .replace("reference_per_payee = false", "reference_per_payee = true")
    )
    edited = load_layout(write(tmp_path, text)).duplicates
    assert edited == DuplicateRules(allow_repeats=True, reference_per_payee=True)


@pytest.mark.parametrize(
    ("header", "canonical"),
    [
        ("Beneficiary IBAN", "iban"),
        ("beneficiary_iban", "iban"),
        ("IBAN", "iban"),
        ("Amount", "amount"),
        ("Ref", "reference"),
        ("Payee ID", "beneficiary_ref"),
        ("PAYEE-ID", "beneficiary_ref"),
        ("E-mail", "email"),
        ("Swift/BIC", "bic"),
        ("  Postal Code ", "postal_code"),
        ("Address Line 1", "address_line1"),
        ("Date of birth", "date_of_birth"),
    ],
)
def test_headers_match_ignoring_case_spaces_and_punctuation(header: str, canonical: str) -> None:
    """Users' headers map to canonical columns through names and aliases."""
    assert load_layout().match_header(header) == canonical


def test_unknown_header_matches_nothing() -> None:
    """A header the layout does not list is not guessed."""
    assert load_layout().match_header("Cost Centre") is None
    assert header_key("Cost-Centre") == "costcentre"


def test_layout_can_rename_headers_through_aliases(tmp_path: Path) -> None:
    """Adding an alias in an edited copy makes a new header match."""
    text = EDITABLE.read_text("utf-8").replace('aliases = ["ccy",', 'aliases = ["Währung", "ccy",')
    layout = load_layout(write(tmp_path, text))
    assert layout.match_header("Währung") == "currency"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (('aliases = ["ccy",', 'aliases = ["amount", "ccy",'), "would match both"),
        (('delimiter = ","', 'delimiter = "::"'), "file.delimiter"),
        (('encoding = "utf-8"', 'encoding = "klingon"'), "not a known text encoding"),
        (("max_rows = 1000000", "max_rows = 0"), "limits.max_rows"),
        (("allow_repeats = false", 'allow_repeats = "yes"'), "duplicates.allow_repeats"),
        (("allow_repeats = false", "allow_repeat = true"), "unknown key(s) in duplicates"),
        (("[columns.bic]", "[columns.swift_code]"), "unknown column"),
        (('kind = "code"\nvalues = ["iban"', 'kind = "money"\nvalues = ["iban"'), "kind"),
        (("max_length = 100\n", "max_length = -1\n"), "max_length"),
        (
            (
                'required = true\nkind = "identifier"\nmax_length = 100',
                'required = "yes"\nkind = "identifier"\nmax_length = 100',
            ),
            "required",
        ),
    ],
)
def test_bad_layout_is_a_config_error(
    tmp_path: Path, change: tuple[str, str], fragment: str
) -> None:
    """A layout that cannot be trusted is refused with a message naming the problem."""
    text = EDITABLE.read_text("utf-8")
    assert change[0] in text
    with pytest.raises(ConfigError) as caught:
        load_layout(write(tmp_path, text.replace(change[0], change[1], 1)))
    assert fragment in caught.value.message


def test_a_column_the_user_file_leaves_out_is_the_built_in_one(tmp_path: Path) -> None:
    """A layout without a column keeps the built-in column (it used to be refused as missing)."""
    text = EDITABLE.read_text("utf-8")
    start = text.index("[columns.description]")
    end = text.index("# ----", start)
    layout = load_layout(write(tmp_path, text[:start] + text[end:]))
    assert layout.column("description") == load_layout().column("description")


def test_invalid_toml_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    """Syntax errors and unreadable paths are reported as configuration problems."""
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_layout(write(tmp_path, "[file\n"))
    with pytest.raises(ConfigError, match="cannot read layout"):
        load_layout(tmp_path / "absent.toml")

"""The column-wise identities are byte for byte the per-row ones: no old file ever looks new.

The oracle is a frozen copy of the per-row code that journals were written with (content
hashes, the fingerprint, row keys); every sample file, every readable file of the hostile corpus
and generated tricky text must hash the same through :mod:`batchpay.dedupe`'s column functions.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchpay import dedupe, ingest, validate
from batchpay.errors import InputError
from batchpay.layout import CANONICAL_COLUMNS, DuplicateRules, load_layout
from tests.hostile.conftest import layout_with_limits
from tests.hostile.corpus import CASES, Case

ROOT = Path(__file__).resolve().parents[2]
ENV = "sandbox|acct_test"

# -- the oracle: the per-row code as it was when the journals were written --------------------

_SEP = "\x1f"
_UPPER = frozenset({"currency", "source_currency", "country", "nationality", "bic", "iban"})
_COMPACT = frozenset({"iban", "sort_code", "account_number", "routing_number"})
_SCALE = {"BHD": 3, "CLP": 0, "ISK": 0, "JOD": 3, "JPY": 0, "KRW": 0, "KWD": 3, "OMR": 3,
          "TND": 3, "UGX": 0, "VND": 0, "XAF": 0, "XOF": 0}  # fmt: skip


def _old_norm(value: object) -> str:
    text = "" if value is None else str(value)
    return unicodedata.normalize("NFC", text).strip()


def _old_identity_text(value: str) -> str:
    return " ".join(_old_norm(value).split()).casefold()


def _old_amount(value: str, currency: str) -> str:
    import re

    if not re.match(r"^\d{1,12}(\.\d+)?$", value):
        return value
    amount = Decimal(value)
    scale = _SCALE.get(currency.upper(), 2)
    quantum = Decimal(1).scaleb(-scale)
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent <= scale or amount == amount.quantize(quantum):
        return f"{amount.quantize(quantum):f}"
    return value


def _old_norm_cell(column: str, row: Mapping[str, object]) -> str:
    value = _old_norm(row.get(column))
    if column in _COMPACT:
        value = "".join(ch for ch in value if ch not in " -")
    if column in _UPPER:
        value = value.upper()
    if column == "amount" and value:
        return _old_amount(value, _old_norm(row.get("currency")).upper())
    return value


def _old_row_content_hash(row: Mapping[str, object]) -> str:
    text = _SEP.join(_old_norm_cell(c, row) for c in CANONICAL_COLUMNS)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _old_fingerprint(rows: Iterable[Mapping[str, object]]) -> str:
    h = hashlib.sha256()
    for d in sorted(_old_row_content_hash(r) for r in rows):
        h.update(d.encode("ascii"))
    return h.hexdigest()


def _old_row_key(environment: str, reference: str, beneficiary_ref: str) -> str:
    text = _SEP.join(
        ("payout", environment, _old_identity_text(reference), _old_identity_text(beneficiary_ref))
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


# -- the comparison ---------------------------------------------------------------------------


@pytest.fixture(params=["polars-hash", "hashlib"], autouse=True)
def hashing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every comparison with SHA-256 from polars-hash and from hashlib row by row."""
    if request.param == "hashlib":
        monkeypatch.setattr(dedupe, "_plh", None)
    else:
        assert dedupe._plh is not None
    return str(request.param)


def _assert_same(frame: pl.DataFrame) -> None:
    rows = frame.to_dicts()
    assert dedupe.content_hashes(frame).to_list() == [_old_row_content_hash(r) for r in rows]
    assert dedupe.frame_fingerprint(frame) == _old_fingerprint(rows)
    assert dedupe.row_keys(frame, ENV).to_list() == [
        _old_row_key(ENV, str(r.get("reference", "")), str(r.get("beneficiary_ref", "")))
        for r in rows
    ]


def _assert_file(path: Path, layout_path: Path | None = None) -> bool:
    lay = load_layout(layout_path)
    try:
        ingested = ingest.read_file(path, lay)
    except InputError:
        return False
    result = validate.validate_frame(ingested, lay)
    _assert_same(ingested.frame)
    _assert_same(result.valid)
    for rules in (DuplicateRules(), DuplicateRules(allow_repeats=True, reference_per_payee=True)):
        valid = result.valid.to_dicts()
        assert dedupe.check_in_file_frame(result.valid, rules) == dedupe.check_in_file(valid, rules)
    return True


SAMPLES = sorted(p for p in (ROOT / "samples").rglob("*") if p.suffix in (".csv", ".xlsx"))


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_files_hash_as_before(path: Path) -> None:
    """Every sample file: the same content hashes, fingerprint and row keys as the per-row code."""
    assert _assert_file(path)


_READABLE = [c for c in CASES if c.exit_code == 4]


@pytest.mark.parametrize("case", _READABLE, ids=lambda c: c.name)
def test_hostile_files_hash_as_before(case: Case, tmp_path: Path) -> None:
    """Every readable hostile file hashes as before (Unicode, spaces, odd amounts included)."""
    path = tmp_path / case.name
    case.build(path)
    layout_path = layout_with_limits(tmp_path, case.limits) if case.limits else None
    assert _assert_file(path, layout_path)


# ASCII, Unicode spaces, digits, case mappings and combining marks
_ASCII = "0123456789.- aAzZßéE\t\n\x0b\x1c\x1f"
_ALPHABET = _ASCII + "\u00a0\u2003\u200b\u0661\u0e51\ufb00\u0130\u0301\u212b"
_TRICKY = st.text(alphabet=_ALPHABET, max_size=8)
_CURRENCY = st.sampled_from(["EUR", "eur", " jpy ", "BHD", "KWD", "", "ＥＵＲ", "us\u00a0d", "ß"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "reference": _TRICKY,
                "beneficiary_ref": _TRICKY,
                "amount": st.one_of(_TRICKY, st.from_regex(r"\A0*[0-9]{1,13}(\.[0-9]{0,6})?\Z")),
                "currency": _CURRENCY,
                "iban": _TRICKY,
                "sort_code": _TRICKY,
                "first_name": _TRICKY,
                "country": _TRICKY,
            }
        ),
        min_size=1,
        max_size=6,
    )
)
def test_tricky_text_hashes_as_before(rows: list[dict[str, str]]) -> None:
    """Unicode digits, spaces, case mappings and odd amounts: column hashes equal the oracle."""
    frame = pl.DataFrame(rows, schema=dict.fromkeys(rows[0], pl.String))
    _assert_same(frame)

"""Duplicates: the file seen before, rows repeated inside it, rows paid by earlier files.

Inside one file (:func:`check_in_file`), two rows with the same reference and payee are the
same payout: an exact repeat is refused unless the layout or the run allows repeats (then it
is paid once), and different details are always refused. One reference for two payees is
refused unless references are unique per payee only.

Identities, all documented in the README:

* **file SHA-256** over the exact bytes — the same file dropped twice;
* **content fingerprint** over the normalised rows, order-independent — a re-saved
  Excel copy, or the same rows exported again as CSV;
* **row key** — the business identity of one payout: environment + reference +
  beneficiary identity (``beneficiary_ref``). Never the row number or the file hash,
  so the same payout in another file has the same key;
* **idempotency key** ``bp1-<row key>-<attempt>`` — attempt 1 for the first payout of
  a row; a new attempt is minted only after a definitive refusal or an explicit
  ``retry-failed``, never for an unknown outcome.
"""

from __future__ import annotations

import hashlib
import importlib
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import polars as pl

from batchpay.errors import RowIssue
from batchpay.layout import CANONICAL_COLUMNS, DuplicateRules
from batchpay.money import CURRENCY_SCALE, fits_scale, format_amount, parse_amount

# Columns that identify a payout's content: every canonical column the user can write.
CONTENT_COLUMNS: tuple[str, ...] = CANONICAL_COLUMNS
_SEP = "\x1f"


def _polars_hash() -> Any:
    """polars-hash (SHA-256 at native speed over a column), or None: hashlib row by row."""
    try:
        return importlib.import_module("polars_hash")
    except ImportError:  # pragma: no cover - a dependency; the fallback is tested directly
        return None


_plh = _polars_hash()


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of the exact bytes."""
    return hashlib.sha256(data).hexdigest()


def _norm(value: object) -> str:
    text = "" if value is None else str(value)
    return unicodedata.normalize("NFC", text).strip()


def identity_text(value: str) -> str:
    """Normalise an identifier for matching: NFC, trimmed, whitespace collapsed, casefolded."""
    return " ".join(_norm(value).split()).casefold()


_UPPER = frozenset({"currency", "source_currency", "country", "nationality", "bic", "iban"})
_COMPACT = frozenset({"iban", "sort_code", "account_number", "routing_number"})


def _norm_cell(column: str, row: Mapping[str, object]) -> str:
    """A cell as the payment sees it: 1250 and 1250.00 are the same amount, DE89 3704 the
    same IBAN as de893704, 12-34-56 the same sort code as 123456."""
    value = _norm(row.get(column))
    if column in _COMPACT:
        value = "".join(ch for ch in value if ch not in " -")
    if column in _UPPER:
        value = value.upper()
    if column == "amount" and value:
        currency = _norm(row.get("currency")).upper()
        try:
            amount = parse_amount(value)
        except ValueError:
            return value  # not a plain amount: the raw text is the content
        # Trailing zeros only; an amount with more decimals than the currency keeps them all.
        return format_amount(amount, currency) if fits_scale(amount, currency) else value
    return value


def row_content_hash(row: Mapping[str, object]) -> str:
    """Hash of a row's normalised content (not its position)."""
    text = _SEP.join(_norm_cell(c, row) for c in CONTENT_COLUMNS)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_fingerprint(rows: Iterable[Mapping[str, object]]) -> str:
    """Order-independent fingerprint of a file's rows: catches re-saved and re-exported copies."""
    digests = sorted(row_content_hash(r) for r in rows)
    h = hashlib.sha256()
    for d in digests:
        h.update(d.encode("ascii"))
    return h.hexdigest()


# -- the same identities over whole columns ------------------------------------------------
#
# Byte for byte what the per-row functions above compute (tests/core/test_dedupe_columns.py
# keeps the per-row code as the oracle). ASCII text is normalised by polars expressions; the few
# distinct non-ASCII values of a column go through the per-row Python functions, so Unicode
# normalisation, case mapping and ``str.isspace`` are Python's own, never a second opinion.

_ASCII_SPACE = "".join(chr(i) for i in range(128) if chr(i).isspace())
_NON_ASCII = r"[^\x00-\x7F]"
_PLAIN_AMOUNT = r"^([0-9]{1,12})(?:\.([0-9]+))?$"
# Rows hashed per chunk: bounds the joined text held at once.
_CHUNK = 100_000


def _text(frame: pl.DataFrame, column: str) -> pl.Expr:
    if column not in frame.columns:
        return pl.lit("", dtype=pl.String)
    return pl.col(column).cast(pl.String).fill_null("")


def _python_values(
    frame: pl.DataFrame, column: str, fn: Callable[[str], str]
) -> dict[str, str] | None:
    """``fn`` (Python) of each distinct non-ASCII value of ``column``; None when there is none."""
    if column not in frame.columns:
        return None
    # the non-ASCII cells first: the distinct values of a whole column cost a hash each
    values = (
        frame.select(_text(frame, column).alias("v"))
        .filter(pl.col("v").str.len_bytes() != pl.col("v").str.len_chars())["v"]
        .unique()
    )
    return {v: fn(v) for v in values.to_list()} if not values.is_empty() else None


def _by_python(
    frame: pl.DataFrame, column: str, ascii_expr: pl.Expr, fn: Callable[[str], str]
) -> pl.Expr:
    """``ascii_expr`` for ASCII cells; ``fn`` (Python) for each distinct non-ASCII value."""
    mapping = _python_values(frame, column, fn)
    if mapping is None:
        return ascii_expr
    cell = _text(frame, column)
    return (
        pl.when(cell.is_in(pl.Series(list(mapping), dtype=pl.String).implode()))
        .then(cell.replace_strict(mapping, default="", return_dtype=pl.String))
        .otherwise(ascii_expr)
    )


def _norm_one(column: str, value: str) -> str:
    return _norm_cell(column, {column: value})


def _non_ascii_columns(frame: pl.DataFrame) -> set[str]:
    """The content columns with a non-ASCII cell: only their distinct values are looked at."""
    present = [c for c in CONTENT_COLUMNS if c in frame.columns]
    if not present or not frame.height:
        return set()
    probes = [
        (_text(frame, c).str.len_bytes() != _text(frame, c).str.len_chars()).any().alias(c)
        for c in present
    ]
    return {c for c, found in frame.select(probes).row(0, named=True).items() if found}


def _cell_expr(frame: pl.DataFrame, column: str, non_ascii: bool = True) -> pl.Expr:
    """:func:`_norm_cell` of ``column`` for every row (``amount`` excepted); ``non_ascii``
    is False when the column is known to be all ASCII."""
    expr = _text(frame, column).str.strip_chars(_ASCII_SPACE)
    if column in _UPPER or column in _COMPACT:
        # Case mapping is Python's for non-ASCII text, and compacting can bare whitespace that
        # trimming must not touch again: those cells bypass the ASCII path.
        if column in _COMPACT:
            expr = expr.str.replace_all(" ", "", literal=True)
            expr = expr.str.replace_all("-", "", literal=True)
        if column in _UPPER:
            expr = expr.str.to_uppercase()
        if not non_ascii:
            return expr
        return _by_python(frame, column, expr, partial(_norm_one, column))
    # Python's result for a non-ASCII value is trimmed already, so the ASCII trim after it
    # changes nothing: one look-up, no second branch.
    mapping = _python_values(frame, column, partial(_norm_one, column)) if non_ascii else None
    if mapping is not None:
        expr = _text(frame, column).replace(mapping).str.strip_chars(_ASCII_SPACE)
    return expr


def _amount_expr(frame: pl.DataFrame, currency: pl.Expr) -> pl.Expr:
    """:func:`_norm_cell` of ``amount``: plain amounts that fit the currency at its scale."""
    value = _text(frame, "amount").str.strip_chars(_ASCII_SPACE)
    parts = value.str.extract_groups(_PLAIN_AMOUNT)
    whole = parts.struct.field("1").str.strip_chars_start("0")
    whole = pl.when(whole == "").then(pl.lit("0")).otherwise(whole)
    fraction = parts.struct.field("2").fill_null("")
    scale = currency.replace_strict(CURRENCY_SCALE, default=2, return_dtype=pl.Int64)
    fits = fraction.str.strip_chars_end("0").str.len_chars() <= scale
    scaled = (
        pl.when(scale == 0)
        .then(whole)
        .otherwise(whole + "." + (fraction + "000").str.slice(0, scale))
    )
    expr = pl.when(parts.struct.field("1").is_not_null() & fits).then(scaled).otherwise(value)
    if "amount" not in frame.columns:
        return expr
    odd = frame.select(
        _text(frame, "amount").alias("a"), _text(frame, "currency").alias("c")
    ).filter(pl.col("a").str.contains(_NON_ASCII) | pl.col("c").str.contains(_NON_ASCII))
    if odd.is_empty():
        return expr
    # Unicode digits are digits to Python's ``\d``: these rows keep the per-row code.
    pairs = odd.unique()
    mapping = {
        a + _SEP + c: _norm_cell("amount", {"amount": a, "currency": c})
        for a, c in pairs.iter_rows()
    }
    key = _text(frame, "amount") + _SEP + _text(frame, "currency")
    return (
        pl.when(key.is_in(pl.Series(list(mapping), dtype=pl.String).implode()))
        .then(key.replace_strict(mapping, default="", return_dtype=pl.String))
        .otherwise(expr)
    )


def _sha256_hex(texts: pl.Series, *, head: int | None = None) -> pl.Series:
    """Hex SHA-256 of each text's UTF-8 bytes (its first ``head`` characters)."""
    if _plh is not None:
        hexes = texts.to_frame("t").select(_plh.col("t").chash.sha2_256())["t"]
    else:
        sha = hashlib.sha256
        hexes = pl.Series([sha(t.encode("utf-8")).hexdigest() for t in texts], dtype=pl.String)
    return hexes if head is None else hexes.str.slice(0, head)


def _content_texts(frame: pl.DataFrame) -> Iterable[pl.Series]:
    """The text each row's content hash is taken of, a chunk of rows at a time."""
    odd = _non_ascii_columns(frame)
    cells = {c: _cell_expr(frame, c, c in odd) for c in CONTENT_COLUMNS if c != "amount"}
    cells["amount"] = _amount_expr(frame, cells["currency"])
    joined = pl.concat_str([cells[c] for c in CONTENT_COLUMNS], separator=_SEP).alias("t")
    for start in range(0, frame.height, _CHUNK):
        yield frame.slice(start, _CHUNK).select(joined)["t"]


def content_hashes(frame: pl.DataFrame) -> pl.Series:
    """:func:`row_content_hash` of every row of ``frame``, in one pass over whole columns."""
    parts = [_sha256_hex(texts) for texts in _content_texts(frame)]
    if not parts:
        return pl.Series("content_hash", [], dtype=pl.String)
    return pl.concat(parts).alias("content_hash")


def frame_fingerprint(frame: pl.DataFrame) -> str:
    """:func:`content_fingerprint` of a frame's rows, on whole columns."""
    return hashes_fingerprint(content_hashes(frame))


def hashes_fingerprint(hashes: pl.Series) -> str:
    """:func:`frame_fingerprint` of the frame whose :func:`content_hashes` are ``hashes``."""
    joined = hashes.sort().str.join("")
    text = joined.item() if joined.len() else ""
    return hashlib.sha256(str(text or "").encode("ascii")).hexdigest()


# What str.split() splits ASCII text at: collapsed to one space, then stripped.
_ASCII_SPACES = ["\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1d", "\x1e", "\x1f", " "]


def identity_expr(frame: pl.DataFrame, column: str) -> pl.Expr:
    """:func:`identity_text` of ``column`` for every row."""
    text = _text(frame, column)
    ascii_expr = text.str.to_lowercase()
    # references seldom hold a space: then there is nothing to collapse or strip (a literal
    # search for any of them costs a third of the regex rewrite it spares)
    spaced = column in frame.columns and bool(
        frame.lazy().select(text.str.contains_any(_ASCII_SPACES).any()).collect().item()
    )
    if spaced:
        ascii_expr = (
            text.str.replace_all(r"[\t\n\x0B\x0C\r\x1C-\x1F ]+", " ")
            .str.strip_chars(" ")
            .str.to_lowercase()
        )
    return _by_python(frame, column, ascii_expr, identity_text)


def row_keys(frame: pl.DataFrame, environment: str) -> pl.Series:
    """:func:`row_key` of every row of ``frame`` (its ``reference`` and ``beneficiary_ref``)."""
    texts = frame.select(
        pl.concat_str(
            [
                pl.lit("payout" + _SEP + environment + _SEP),
                identity_expr(frame, "reference"),
                pl.lit(_SEP),
                identity_expr(frame, "beneficiary_ref"),
            ]
        ).alias("t")
    )["t"]
    return _sha256_hex(texts, head=40).alias("row_key")


def row_key(environment: str, reference: str, beneficiary_ref: str) -> str:
    """Business identity of one payout: environment + reference + beneficiary."""
    text = _SEP.join(
        ("payout", environment, identity_text(reference), identity_text(beneficiary_ref))
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


def idempotency_key(key: str, attempt: int) -> str:
    """The Idempotency-Key for attempt ``attempt`` of the payout with row key ``key``."""
    return f"bp1-{key}-{attempt}"


def beneficiary_key(environment: str, external_ref: str, pii_fingerprint: str) -> str:
    """Idempotency-Key for creating the beneficiary ``external_ref`` with these details."""
    text = _SEP.join(("beneficiary", environment, identity_text(external_ref), pii_fingerprint))
    return "bp1-ben-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


def instrument_key(environment: str, beneficiary_id: str, credential_fingerprint: str) -> str:
    """Idempotency-Key for attaching these credentials to this beneficiary."""
    text = _SEP.join(("instrument", environment, beneficiary_id, credential_fingerprint))
    return "bp1-ins-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


def fingerprint(*parts: str) -> str:
    """A one-way fingerprint of sensitive values (credentials, PII) for matching only."""
    text = _SEP.join(_norm(p).casefold() for p in parts)
    return hashlib.sha256(("batchpay-fp" + _SEP + text).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class InFileDuplicate:
    """A later exact copy of an earlier row, accepted as one payment (``allow_repeats``)."""

    row: int
    first_row: int

    @property
    def message(self) -> str:
        """Plain-words explanation for the report."""
        return f"same as row {self.first_row}"


@dataclass(frozen=True)
class InFileCheck:
    """The duplicates inside one file: copies accepted as one payment, and refused rows."""

    repeats: list[InFileDuplicate]
    issues: list[RowIssue]

    @property
    def refused_rows(self) -> set[int]:
        """Rows refused as duplicates: with ``--skip-invalid`` they are not paid."""
        return {i.row for i in self.issues}

    @property
    def repeat_rows(self) -> set[int]:
        """Later copies accepted as one payment with their first row: not paid themselves."""
        return {d.row for d in self.repeats}


@dataclass(frozen=True)
class _Seen:
    number: int
    row: Mapping[str, object]
    payee: str  # identity_text of beneficiary_ref
    content: str


# Rows named in one message at most; the rest are counted.
_NAMED_ROWS = 5


def check_in_file(
    rows: Sequence[Mapping[str, object]],
    rules: DuplicateRules | None = None,
    *,
    labels: Mapping[str, str] | None = None,
) -> InFileCheck:
    """Find the rows of one file that repeat each other's reference, payee or both.

    ``rows`` are validated rows carrying ``_row``; ``labels`` maps a canonical column to the
    file's own header, for messages. An exact repeat is refused unless ``rules`` allows
    repeats, one reference for several payees unless it allows a reference per payee, and the
    same reference and payee with different details always: the file cannot say which is right.
    """
    seen = [
        _Seen(
            number=int(str(r["_row"])),
            row=r,
            payee=identity_text(str(r.get("beneficiary_ref", ""))),
            content=row_content_hash(r),
        )
        for r in rows
    ]
    refs = [identity_text(str(s.row.get("reference", ""))) for s in seen]
    return _check(seen, refs, rules or DuplicateRules(), labels or {})


def check_in_file_frame(
    valid: pl.DataFrame,
    rules: DuplicateRules | None = None,
    *,
    labels: Mapping[str, str] | None = None,
    hashes: pl.Series | None = None,
) -> InFileCheck:
    """:func:`check_in_file` over a frame of validated rows, on whole columns.

    Only the rows that share a reference with another row are looked at one by one (for
    their messages); ``hashes`` are the rows' :func:`content_hashes` when already known.
    """
    rules = rules or DuplicateRules()
    keyed = valid.lazy().with_columns(identity_expr(valid, "reference").alias("__ref"))
    if hashes is not None:
        keyed = keyed.with_columns(hashes.alias("__content"))
    # Every repeat shares its reference with another row: the rest cannot be duplicates.
    # Equal references hash alike, so the rows whose hash no other row has are set aside
    # first, over integers; only the rest are compared as text (exact, collisions or not).
    ref = pl.col("__ref")
    # As many distinct hashes as rows: every reference differs (equal texts hash alike), the
    # usual file, told by one count rather than a table of which hashes repeat.
    if keyed.select(ref.hash().n_unique()).collect().item() == valid.height:
        return InFileCheck(repeats=[], issues=[])
    shared = keyed.filter(ref.hash().is_duplicated()).filter(ref.is_duplicated()).collect()
    if shared.is_empty():
        return InFileCheck(repeats=[], issues=[])
    shared = shared.with_columns(identity_expr(shared, "beneficiary_ref").alias("__payee"))
    if hashes is None:
        shared = shared.with_columns(content_hashes(shared).alias("__content"))
    rows = shared.drop("__ref", "__payee", "__content").to_dicts()
    ids = shared.select("__ref", "__payee", "__content").rows()
    seen = [
        _Seen(number=int(str(r["_row"])), row=r, payee=payee, content=content)
        for r, (_, payee, content) in zip(rows, ids, strict=True)
    ]
    refs = [ref for ref, _, _ in ids]
    return _check(seen, refs, rules, labels or {})


def _check(
    seen: Sequence[_Seen], refs: Sequence[str], rules: DuplicateRules, labels: Mapping[str, str]
) -> InFileCheck:
    by_identity: dict[tuple[str, str], list[_Seen]] = {}
    by_reference: dict[str, list[_Seen]] = {}
    for s, ref in zip(seen, refs, strict=True):
        by_identity.setdefault((ref, s.payee), []).append(s)
        by_reference.setdefault(ref, []).append(s)
    repeats: list[InFileDuplicate] = []
    issues: list[RowIssue] = []
    for group in by_identity.values():
        if len(group) < 2:
            continue
        if len({s.content for s in group}) == 1:
            first = group[0]
            for later in group[1:]:
                if rules.allow_repeats:
                    repeats.append(InFileDuplicate(later.number, first.number))
                else:
                    issues.append(
                        RowIssue(later.number, None, "repeated_row", _repeat_message(first, later))
                    )
        else:
            for s in group:
                issues.append(
                    RowIssue(
                        s.number, None, "conflicting_repeat", _conflict_message(s, group, labels)
                    )
                )
    if not rules.reference_per_payee:
        column = labels.get("reference", "reference")
        for group in by_reference.values():
            if len({s.payee for s in group}) < 2:
                continue
            for s in group:
                issues.append(
                    RowIssue(
                        s.number, column, "reference_for_other_payee", _reused_message(s, group)
                    )
                )
    issues.sort(key=lambda i: i.row)
    repeats.sort(key=lambda d: d.row)
    return InFileCheck(repeats=repeats, issues=issues)


def _quote(value: object) -> str:
    text = str(value)
    return f"'{text[:40]}…'" if len(text) > 40 else f"'{text}'"


def _and(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _rows_text(numbers: Sequence[int]) -> str:
    shown = [str(n) for n in numbers[:_NAMED_ROWS]]
    if len(numbers) > _NAMED_ROWS:
        shown.append(f"{len(numbers) - _NAMED_ROWS} more")
    return ("row " if len(numbers) == 1 else "rows ") + _and(shown)


def _none_paid(n: int) -> str:
    if n == 2:
        return "neither row is paid (--skip-invalid skips both)"
    return f"none of these {n} rows is paid (--skip-invalid skips them all)"


def _repeat_message(first: _Seen, later: _Seen) -> str:
    return (
        f"repeats row {first.number} exactly (reference {_quote(first.row.get('reference'))}, "
        f"payee {_quote(first.row.get('beneficiary_ref'))}); a repeat is refused so that it "
        "is not paid twice: delete the copy, or pass --allow-repeats to pay it once "
        f"(--skip-invalid pays row {first.number} and not this copy)"
    )


def _conflict_message(this: _Seen, group: Sequence[_Seen], labels: Mapping[str, str]) -> str:
    others = [s for s in group if s.content != this.content]
    columns = [
        c
        for c in CONTENT_COLUMNS
        if any(_norm_cell(c, this.row) != _norm_cell(c, s.row) for s in others)
    ]
    named = []
    for c in columns:
        label = labels.get(c, c)
        if c == "amount":
            # Amounts are what nobody can choose between: show them (never bank details).
            there = ", ".join(f"{_norm_cell(c, s.row)} on row {s.number}" for s in others[:3])
            there += ", …" if len(others) > 3 else ""
            label += f" ({_norm_cell(c, this.row)} here, {there})"
        elif c in ("reference", "beneficiary_ref"):
            label += " (the same but for case or spaces)"
        named.append(label)
    reference, payee = _quote(this.row.get("reference")), _quote(this.row.get("beneficiary_ref"))
    rows = _rows_text([s.number for s in others])
    return (
        f"same reference {reference} and payee {payee} as {rows} but a different "
        f"{_and(named)}; nobody can tell which row is right, so {_none_paid(len(group))}: "
        "correct the file"
    )


def _reused_message(this: _Seen, group: Sequence[_Seen]) -> str:
    others = [s for s in group if s.payee != this.payee]
    where = _and(
        [
            f"row {s.number} for payee {_quote(s.row.get('beneficiary_ref'))}"
            for s in others[:_NAMED_ROWS]
        ]
        + ([f"{len(others) - _NAMED_ROWS} more rows"] if len(others) > _NAMED_ROWS else [])
    )
    payee = _quote(this.row.get("beneficiary_ref"))
    return (
        f"{_quote(this.row.get('reference'))} is also the reference on {where} (this row's "
        f"payee is {payee}); one reference is one payout, so {_none_paid(len(group))}: give "
        "each payout its own reference, or pass --reference-per-payee if references are "
        "unique per payee only (e.g. supplier invoice numbers)"
    )

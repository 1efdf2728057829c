"""Duplicates: the file seen before, rows repeated inside it, rows paid by earlier files.

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
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from batchpay.layout import CANONICAL_COLUMNS
from batchpay.money import fits_scale, format_amount, parse_amount

# Columns that identify a payout's content: every canonical column the user can write.
CONTENT_COLUMNS: tuple[str, ...] = CANONICAL_COLUMNS
_SEP = "\x1f"


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
    """A row whose payout identity already appeared earlier in the same file."""

    row: int
    first_row: int
    same_content: bool

    @property
    def message(self) -> str:
        """Plain-words explanation for the report."""
        if self.same_content:
            return f"same as row {self.first_row}"
        return (
            f"same reference and beneficiary as row {self.first_row} "
            "but different details; only the first is paid"
        )


def in_file_duplicates(rows: Sequence[Mapping[str, object]]) -> list[InFileDuplicate]:
    """Rows repeating an earlier row's reference + beneficiary, in file order."""
    seen: dict[tuple[str, str], tuple[int, str]] = {}
    found: list[InFileDuplicate] = []
    for r in rows:
        ident = (
            identity_text(str(r.get("reference", ""))),
            identity_text(str(r.get("beneficiary_ref", ""))),
        )
        content = row_content_hash(r)
        number = int(str(r["_row"]))
        if ident in seen:
            first_row, first_content = seen[ident]
            found.append(InFileDuplicate(number, first_row, first_content == content))
        else:
            seen[ident] = (number, content)
    return found

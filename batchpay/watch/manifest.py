"""The completion marker ``NAME.ok``: empty, or a small TOML manifest that is checked.

An empty marker only says "this file is complete". A manifest also says what the file is,
in the same TOML shape as a ``.ctl`` control file plus the file's SHA-256::

    sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    rows = 34
    [totals]
    EUR = "44388.50"
    USD = "34080.73"

Every key is optional. A SHA-256 that differs from the bytes read, or rows and totals that
differ from the file's, refuse the file (exit 4): it lands in ``failed/``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from decimal import Decimal

from batchpay.errors import ControlTotalsMismatch
from batchpay.money import parse_amount

MARKER_SUFFIX = ".ok"
_HINT = 'write the marker empty, or as TOML: sha256 = "…", rows = 34, [totals] EUR = "12500.00"'


@dataclass(frozen=True)
class Manifest:
    """What a completion marker declares about its file (all optional)."""

    sha256: str | None = None
    rows: int | None = None
    totals: dict[str, Decimal] = field(default_factory=dict)


def read_manifest(data: bytes, name: str) -> Manifest:
    """Parse a marker's bytes; an empty (or blank) marker declares nothing."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ControlTotalsMismatch(f"the marker {name} is not UTF-8 text", hint=_HINT) from None
    if not text.strip():
        return Manifest()
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ControlTotalsMismatch(f"cannot read the marker {name}: {exc}", hint=_HINT) from None
    unknown = sorted(set(parsed) - {"sha256", "rows", "totals"})
    sha = parsed.get("sha256")
    rows = parsed.get("rows")
    totals_raw = parsed.get("totals", {})
    if (
        unknown
        or (sha is not None and not _is_sha256(sha))
        or (rows is not None and (not isinstance(rows, int) or isinstance(rows, bool)))
        or not isinstance(totals_raw, dict)
    ):
        what = f"unknown key(s) {', '.join(unknown)}" if unknown else "a value of the wrong kind"
        raise ControlTotalsMismatch(f"the marker {name} has {what}", hint=_HINT)
    totals: dict[str, Decimal] = {}
    for cur, value in totals_raw.items():
        if not isinstance(value, str):
            raise ControlTotalsMismatch(
                f"the marker {name} gives {cur} as a number",
                hint=f'write amounts as quoted decimals, e.g. {cur} = "12500.00"',
            )
        try:
            totals[str(cur).upper()] = parse_amount(value.strip())
        except ValueError:
            raise ControlTotalsMismatch(
                f"the marker {name} gives {cur} = {value!r}, not a plain amount", hint=_HINT
            ) from None
    return Manifest(sha256=sha.lower() if sha else None, rows=rows, totals=totals)


def _is_sha256(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) == 64
        and all(c in "0123456789abcdef" for c in value.lower())
    )


def check_sha256(manifest: Manifest, actual: str, file_name: str, marker_name: str) -> None:
    """Refuse a file whose bytes are not the ones its manifest names."""
    if manifest.sha256 is not None and manifest.sha256 != actual:
        raise ControlTotalsMismatch(
            f"{file_name} does not match its marker {marker_name}: its SHA-256 is "
            f"{actual[:16]}…, the marker declares {manifest.sha256[:16]}…; nothing was sent",
            hint="the file changed or is incomplete: drop it again with a fresh marker",
        )

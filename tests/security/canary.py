"""Canary values and the search for them in everything batchpay writes or says.

A canary is a value recognisable anywhere: an API key, an OAuth client secret, a private DPoP
key (its private number and every line of its PEM) and IBANs with distinctive digits. After
a run, every line of output, every log record, every report file (XLSX unzipped), every row of
every journal table and every other file batchpay left behind is searched for them, ignoring
case, with and without spaces, and for any eight consecutive characters of an IBAN: the key must
appear nowhere, an IBAN only as ``****`` and its last four characters.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import closing
from pathlib import Path

from batchpay.auth import DPoPKey
from batchpay.testing import fake_live_key

CANARY_KEY = "ak_test_CANARYKEY0123456789"
WRONG_KEY = "ak_test_CANARYWRONG987654321"  # a key the server does not know
LIVE_KEY = fake_live_key("CANARYLIVE")
CANARY_IBAN = "DE71271828182845904523"  # digits of e; valid check digits
OTHER_IBAN = "DE83314159265358979323"  # digits of pi; the same payee's new bank details
MISTYPED_IBAN = "DE72271828182845904523"  # the canary with its check digits wrong

CANARY_CLIENT_ID = "ant_oc_test_CANARYCLIENT0123456789"
CANARY_CLIENT_SECRET = "ant_ocs_test_CANARYSECRET0123456789"
CANARY_DPOP_KEY = DPoPKey.generate()  # made per test session: never committed anywhere
_KEY_JWK = CANARY_DPOP_KEY._key.as_dict(private=True)

KEYS = (CANARY_KEY, WRONG_KEY, LIVE_KEY, CANARY_CLIENT_SECRET)
KEY_MATERIAL = (
    str(_KEY_JWK["d"]),
    *(line for line in CANARY_DPOP_KEY.pem().decode().splitlines() if "-----" not in line),
)
IBANS = (CANARY_IBAN, OTHER_IBAN, MISTYPED_IBAN)


def spaced(iban: str) -> str:
    """The IBAN as it is printed: groups of four."""
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


def masked(iban: str) -> str:
    """The only form an IBAN may take in anything batchpay writes."""
    return "****" + iban[-4:]


def needles() -> tuple[dict[str, str], dict[str, str]]:
    """What must never be found (lower case) -> what it is: whole values, and IBAN windows."""
    whole: dict[str, str] = {}
    windows: dict[str, str] = {}
    for key in KEYS:
        whole[key.lower()] = f"API key {key}"
        whole[key.split("_", 2)[2].lower()] = f"API key {key} without its prefix"
    for n, material in enumerate(KEY_MATERIAL):
        whole[material.lower()] = f"private DPoP key material #{n}"
    for iban in IBANS:
        whole[iban.lower()] = f"IBAN {iban}"
        whole[spaced(iban).lower()] = f"IBAN {iban} printed"
        # any eight consecutive characters: a partly masked IBAN ("DE712718…") leaks too
        for at in range(len(iban) - 7):
            windows[iban[at : at + 8].lower()] = f"IBAN {iban} characters {at + 1}-{at + 8}"
    return whole, windows


WHOLE, WINDOWS = needles()
# a window found inside a hex digest (sha256, idempotency keys) is chance, not a leak
_HEX_RUN = re.compile(r"[0-9a-f]{32,}")


def leaks(texts: Iterable[tuple[str, str]]) -> list[str]:
    """Every (where, what) a canary was found in, for texts given as (where, text)."""
    out = []
    for where, text in texts:
        low = text.lower()
        compact = "".join(low.split())
        for needle, what in WHOLE.items():
            if needle in low or (" " not in needle and needle in compact):
                out.append(f"{what} in {where}")
        if not any(w in compact for w in WINDOWS):
            continue
        for haystack in {low, compact}:
            digests = [m.span() for m in _HEX_RUN.finditer(haystack)]
            for needle, what in WINDOWS.items():
                for m in re.finditer(re.escape(needle), haystack):
                    if not any(a <= m.start() and m.end() <= b for a, b in digests):
                        out.append(f"{what} in {where}")
                        break
    return sorted(set(out))


def log_texts(records: Iterable[logging.LogRecord]) -> Iterator[tuple[str, str]]:
    """Every log record: its message, its arguments and any traceback."""
    for r in records:
        where = f"log {r.name}:{r.levelname}"
        yield where, r.getMessage()
        yield where + " args", repr(r.args)
        if r.exc_info or r.exc_text:
            yield where + " traceback", logging.Formatter().format(r)


def journal_texts(path: Path) -> Iterator[tuple[str, str]]:
    """Every row of every table of a journal database, as text."""
    with closing(sqlite3.connect(path)) as db:
        tables = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                yield f"journal {path.name} table {table}", " | ".join(map(str, row))


def file_texts(root: Path, *, skip: Iterable[Path] = ()) -> Iterator[tuple[str, str]]:
    """Every file under ``root`` (but ``skip``): raw bytes, zip members, SQLite rows."""
    skipped = {p.resolve() for p in skip}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.resolve() in skipped:
            continue
        data = path.read_bytes()
        where = str(path.relative_to(root))
        yield where, data.decode("latin-1")
        yield where + " (utf-16)", data.decode("utf-16-le", "replace")
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for name in archive.namelist():
                    yield f"{where}!{name}", archive.read(name).decode("utf-8", "replace")
        if data.startswith(b"SQLite format 3\x00"):
            yield from journal_texts(path)

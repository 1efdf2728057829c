"""Helpers for tests of code that uses batchpay: valid payout rows and files.

Public and documented so users' own integration tests (and batchpay's benchmarks and chaos
scripts) build realistic payout files the same way batchpay's tests do.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchpay.config import Mode, OAuthSettings, Secret, Settings
from batchpay.sandbox.config import DEFAULT_API_KEY as SANDBOX_TEST_KEY
from batchpay.sandbox.config import DEFAULT_CLIENT_ID as SANDBOX_CLIENT_ID
from batchpay.sandbox.config import DEFAULT_CLIENT_SECRET as SANDBOX_CLIENT_SECRET
from batchpay.sandbox.oauth import dpop_key_path

if TYPE_CHECKING:
    from batchpay.sandbox import Sandbox

SANDBOX_DPOP_KEY_FILE = Path(dpop_key_path())
"""The sandbox's documented test DPoP private key (public knowledge: sandbox only)."""

HEADERS = [
    "reference", "beneficiary_ref", "beneficiary_type", "first_name", "last_name",
    "business_name", "registration_number", "email", "phone", "date_of_birth", "nationality",
    "address_line1", "city", "postal_code", "country", "amount", "currency", "source_currency",
    "payment_method", "iban", "bic", "account_number", "routing_number", "account_type",
    "sort_code", "purpose", "state",
]  # fmt: skip

# Real, valid bank details of well-known test accounts.
IBANS = [
    ("DE", "DE89370400440532013000"),
    ("FR", "FR1420041010050500013M02606"),
    ("NL", "NL91ABNA0417164300"),
    ("ES", "ES9121000418450200051332"),
    ("IT", "IT60X0542811101000000123456"),
]
ABAS = ["021000021", "026009593", "011000015", "121000358"]


def payout_row(i: int, **over: str) -> dict[str, str]:
    """A valid row; ``i`` picks the beneficiary and the payment method."""
    kind = i % 3
    row = {h: "" for h in HEADERS}
    row.update(
        reference=f"INV-2026-{1000 + i}",
        beneficiary_ref=f"V-{i:04d}",
        beneficiary_type="individual" if i % 2 == 0 else "business",
        email=f"payee{i}@example.com",
        phone="+442079460000",
        address_line1=f"{i} Example Street",
        city="Springfield",
        postal_code="12345",
        amount=f"{100 + i}.{(i * 7) % 90:02d}",
        purpose="contractor_payment",
    )
    if row["beneficiary_type"] == "individual":
        row.update(first_name=f"Alex{i}", last_name="Doe", date_of_birth="1985-04-12",
                   nationality="DE")  # fmt: skip
    else:
        row.update(business_name=f"Acme {i} GmbH", registration_number=f"HRB{10000 + i}")
    if kind == 0:
        country, iban = IBANS[i % len(IBANS)]
        row.update(country=country, currency="EUR", payment_method="iban", iban=iban)
    elif kind == 1:
        row.update(country="US", currency="USD", payment_method="us_bank",
                   routing_number=ABAS[i % len(ABAS)], account_number=f"{1000000 + i}",
                   account_type="checking", postal_code="10001", state="NY")  # fmt: skip
    else:
        row.update(country="GB", currency="GBP", payment_method="uk_bank",
                   sort_code="601613", account_number=f"{31926819 + i:08d}",
                   postal_code="SW1A 1AA")  # fmt: skip
    if row["beneficiary_type"] == "individual":
        row["nationality"] = row["country"]
    row.update(over)
    return row


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    """Write ``rows`` as a UTF-8 CSV with canonical headers."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=HEADERS)
        w.writeheader()
        w.writerows(rows)
    return path


def fake_live_key(tag: str = "TESTONLY") -> str:
    """A string shaped like a live API key, built at run time so no key-like literal is committed.

    For tests that prove live keys are refused or never leak; it is not a real key.
    """
    return "ak_" + "live_" + f"{tag}0123456789"


def fake_live_client(tag: str = "TESTONLY") -> tuple[str, str]:
    """An id and secret shaped like a live OAuth client's, built at run time (not real)."""
    return "ant_oc_" + "live_" + f"{tag}0123456789", "ant_ocs_" + "live_" + f"{tag}0123456789"


def sandbox_env(auth: str = "keys") -> dict[str, str]:
    """The environment variables that point batchpay at a sandbox with its test credential:
    the test API key (``auth="keys"``) or the test OAuth client and DPoP key (``"oauth"``)."""
    if auth == "oauth":
        return {
            "BATCHPAY_CLIENT_ID": SANDBOX_CLIENT_ID,
            "BATCHPAY_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
            "BATCHPAY_DPOP_KEY_FILE": str(SANDBOX_DPOP_KEY_FILE),
        }
    return {"BATCHPAY_API_KEY": SANDBOX_TEST_KEY}


def sandbox_oauth_settings(home: Path, **kw: Any) -> Settings:
    """Like :func:`sandbox_settings`, with the sandbox's test OAuth client and DPoP key."""
    oauth = OAuthSettings(
        client_id=SANDBOX_CLIENT_ID,
        client_secret=Secret(SANDBOX_CLIENT_SECRET),
        dpop_key=Secret(SANDBOX_DPOP_KEY_FILE.read_text(encoding="utf-8")),
        dpop_key_path=SANDBOX_DPOP_KEY_FILE,
    )
    return sandbox_settings(home, api_key=None, oauth=oauth, **kw)


def sandbox_settings(home: Path, key: str = SANDBOX_TEST_KEY, **kw: Any) -> Settings:
    """Settings for a sandbox reached through an injected transport, state under ``home``."""
    kw.setdefault("api_key", Secret(key))
    return Settings(
        mode=Mode.SANDBOX,
        api_url="http://sandbox.test",
        home=home / ".batchpay",
        journal_path=home / ".batchpay" / "journal.db",
        **kw,
    )


def run_kwargs(sb: Sandbox, settings: Settings, tmp_path: Path, **options: Any) -> dict[str, Any]:
    """Keyword arguments for ``pipeline.run_async`` against the in-process sandbox ``sb``:
    its transport and clock, ``--wait`` sleeps that move its clock, reports under
    ``tmp_path/reports`` and ``options`` as :class:`~batchpay.options.RunOptions`."""
    from batchpay.options import RunOptions

    async def advance(seconds: float) -> None:
        await sb.advance(max(seconds, 1.0))

    return {
        "settings": settings,
        "options": RunOptions(out_dir=tmp_path / "reports", **options),
        "transport": sb.transport(),
        "clock": sb.clock.now,
        "track_sleep": advance,
    }


def disk_full_after(spare_pages: int) -> Callable[[sqlite3.Connection], None]:
    """A ``batchpay.journal.connection_hook`` that lets each new journal connection grow by
    ``spare_pages`` pages only (``PRAGMA max_page_count``): writes past them fail with
    SQLITE_FULL, as on a full disk."""

    def hook(db: sqlite3.Connection) -> None:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count={pages + spare_pages}")

    return hook

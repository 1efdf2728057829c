"""End-to-end fixtures: a manual-clock sandbox in process, settings and file builders."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from batchpay.client import set_testing
from batchpay.config import Mode, Secret, Settings
from batchpay.sandbox import DEFAULT_API_KEY, Sandbox, SandboxConfig

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


def payee(i: int, **over: str) -> dict[str, str]:
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


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    """Retries and the rate limiter do not sleep in tests."""
    set_testing(True)
    yield
    set_testing(False)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """A fresh sandbox whose clock moves only when the test says so."""
    sb = Sandbox(SandboxConfig(manual_clock=True, rate_limit_per_minute=None))
    yield sb
    await sb.aclose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a sandbox reached through an injected transport."""
    return Settings(
        mode=Mode.SANDBOX,
        api_url="http://sandbox.test",
        api_key=Secret(DEFAULT_API_KEY),
        home=tmp_path / ".batchpay",
        journal_path=tmp_path / ".batchpay" / "journal.db",
    )


def run_kwargs(sb: Sandbox, settings: Settings, tmp_path: Path, **options: Any) -> dict[str, Any]:
    """Keyword arguments for pipeline.run_async against ``sb``."""
    from batchpay.pipeline import RunOptions

    async def advance(seconds: float) -> None:
        await sb.advance(max(seconds, 1.0))

    return {
        "settings": settings,
        "options": RunOptions(out_dir=tmp_path / "reports", **options),
        "transport": sb.transport(),
        "clock": sb.clock.now,
        "track_sleep": advance,
    }

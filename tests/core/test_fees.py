"""Known fees: the highest fee per method and currency, read without scanning every payout."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path

from batchpay.journal import MIGRATIONS, Journal
from batchpay.preflight import known_fees

ENV = "sandbox:test"


def _run(j: Journal, rows: int) -> str:
    return j.create_run(
        environment=ENV,
        api_url="http://x",
        mode="sandbox",
        file={"sha256": "s", "fingerprint": "f", "name": "f.csv", "size": 1, "format": "csv",
              "row_count": rows},
        rows=[
            {"row_number": n + 2, "reference": f"R{n}", "beneficiary_ref": "B", "row_key": f"k{n}",
             "content_hash": "h", "amount": "1.00", "currency": "GBP", "source_currency": "GBP",
             "payment_method": "uk_bank", "masked_account": "****1234", "state": "planned"}
            for n in range(rows)
        ],
        options={},
    )  # fmt: skip


def _pay(j: Journal, run_id: str, n: int, method: str, fee: str, currency: str = "GBP") -> None:
    key = f"bp1-k{n}-1"
    j.begin_payout(
        environment=ENV, run_id=run_id, row_number=n + 2, row_key=f"k{n}", reference=f"R{n}",
        attempt=1, idempotency_key=key, body=json.dumps({"method": method}),
    )  # fmt: skip
    payout = {"id": f"po_{n}", "status": "created", "fee": fee, "fee_currency": currency}
    j.record_payout_created(key, payout, request_id=None, settled_by="answer")


def test_known_fees_are_the_highest_per_method_and_currency_compared_as_decimals(
    tmp_path: Path,
) -> None:
    """9.50 beats 10.00 as text but not as money: the highest fee is compared as a decimal."""
    fees = [("faster_payment", "9.50"), ("faster_payment", "10.00"), ("faster_payment", "2"),
            ("sepa", "0.35"), ("sepa", "0.30")]  # fmt: skip
    with Journal(tmp_path / "j.db") as j:
        run_id = _run(j, len(fees))
        for n, (method, fee) in enumerate(fees):
            _pay(j, run_id, n, method, fee, "EUR" if method == "sepa" else "GBP")
        assert known_fees(j, ENV) == {
            ("faster_payment", "GBP"): Decimal("10.00"),
            ("sepa", "EUR"): Decimal("0.35"),
        }
        assert known_fees(j, "production:other") == {}


def test_known_fees_keep_one_row_per_method_and_currency_however_many_payouts(
    tmp_path: Path,
) -> None:
    """Three hundred payouts leave one fee row: what a preflight reads does not grow."""
    with Journal(tmp_path / "j.db") as j:
        run_id = _run(j, 300)
        for n in range(300):
            _pay(j, run_id, n, "faster_payment", f"{1 + n % 7}.25")
        assert j.db.execute("SELECT COUNT(*) FROM payout_fees").fetchone()[0] == 1
        assert known_fees(j, ENV) == {("faster_payment", "GBP"): Decimal("7.25")}


def test_an_older_journal_backfills_its_known_fees(tmp_path: Path) -> None:
    """A journal from before the fees table opens with the fees its payouts already show."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, sql, _pg in MIGRATIONS[:2]:
        for statement in sql.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute("INSERT INTO migrations VALUES (?, 'then')", (name,))
    db.execute("INSERT INTO files VALUES (1, ?, 's', 'f', 'f.csv', 1, 'csv', 1, 'then')", (ENV,))
    db.execute("INSERT INTO runs (id, file_id, environment, api_url, mode, status, created_at, "
               "updated_at) VALUES ('run_old', 1, ?, 'http://x', 'sandbox', 'open', 't', 't')",
               (ENV,))  # fmt: skip
    old = [('{"method":"sepa"}', "0.90", "EUR"), ('{"method":"sepa"}', "10.10", "EUR"),
           ('{"method":"ach"}', "1.00", "USD"), ("not json", "5.00", "USD"),
           ('{"amount":"1"}', "6.00", "USD"), ('{"method":"ach"}', None, None)]  # fmt: skip
    for n, (body, fee, currency) in enumerate(old):
        db.execute("INSERT INTO payouts (idempotency_key, environment, row_key, attempt, run_id, "
                   "row_number, reference, body, state, fee, fee_currency, created_at, "
                   "updated_at) VALUES (?, ?, ?, 1, 'run_old', ?, 'R', ?, 'created', ?, ?, 't', "
                   "'t')", (f"bp1-k{n}-1", ENV, f"k{n}", n + 2, body, fee, currency))  # fmt: skip
    db.commit()
    db.close()
    with Journal(path) as j:
        assert known_fees(j, ENV) == {
            ("sepa", "EUR"): Decimal("10.10"),
            ("ach", "USD"): Decimal("1.00"),
        }

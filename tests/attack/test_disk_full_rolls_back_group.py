"""A full disk rolls back a group's whole transaction: its waiting intents must not be sent.

Inside ``Journal.grouped()`` the intents of many payouts wait in one open transaction for
the COMMIT that makes them durable. When one verb's statement fails with SQLITE_FULL (a
full disk) or an I/O error, SQLite may roll back the *whole* transaction, not only the
statement (it does for a one-row INSERT or UPDATE: no statement journal to undo it alone).
The intents of every other payout in it are gone, yet the group released their
``durable()`` waiters as if their commit had come (no transaction open: "nothing pending";
``GroupCommit._commit`` on main, ``_wake`` in the off-loop sync of f636dcb), so their
requests left with no intent in the journal: the provider paid rows this journal does not know of
(after the key's 24 hours a rerun pays them again), and each keyed POST's key was not in
the journal when it left.

A run with many payouts in flight on a journal that fills up: every payout POST's key is
committed when it leaves, every payout in the sandbox's ledger has its intent in the
journal, and a rerun pays each row once.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import httpx
import pytest

from batchpay import journal as journal_mod
from batchpay import pipeline
from batchpay.config import Settings
from batchpay.errors import ExitCode, JournalError
from batchpay.journal import Journal
from batchpay.sandbox import Sandbox
from batchpay.testing import disk_full_after

from .conftest import payee, run_kwargs, write_csv

pytestmark = pytest.mark.anyio


class _KeysCommitted(httpx.AsyncBaseTransport):
    """Before each payout POST reaches the sandbox, look its key up in the journal
    through another connection (only what is committed is visible there)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, journal_path: Path) -> None:
        self.inner = inner
        self.journal_path = journal_path
        self.sent = 0
        self.uncommitted: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("idempotency-key")
        if request.method == "POST" and request.url.path == "/v1/payouts" and key:
            other = sqlite3.connect(self.journal_path)
            try:
                found = other.execute(
                    "SELECT 1 FROM payouts WHERE idempotency_key=?", (key,)
                ).fetchone()
            finally:
                other.close()
            self.sent += 1
            if found is None:
                self.uncommitted.append(key)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("spare_pages", [40, 56, 64])
async def test_a_full_disk_mid_group_sends_no_payout_whose_intent_was_rolled_back(
    sandbox: Sandbox,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spare_pages: int,
) -> None:
    rows = [payee(i) for i in range(120)]
    f = write_csv(tmp_path / "pay.csv", rows)
    Journal(settings.journal_path).close()

    monkeypatch.setattr(journal_mod, "connection_hook", disk_full_after(spare_pages))
    kwargs = run_kwargs(sandbox, settings, tmp_path)
    check = _KeysCommitted(kwargs["transport"], settings.journal_path)
    kwargs["transport"] = check
    with pytest.raises(JournalError) as caught:
        await pipeline.run_async(f, **kwargs)
    assert caught.value.exit_code == ExitCode.CONFIG

    monkeypatch.setattr(journal_mod, "connection_hook", None)
    with Journal(settings.journal_path) as j:
        known = {r["idempotency_key"] for r in j.db.execute("SELECT idempotency_key FROM payouts")}
    paid = sandbox.ledger()
    unknown = [p["reference"] for p in paid if p.get("idempotency_key") not in known]
    assert check.uncommitted == [], f"{len(check.uncommitted)} of {check.sent} sent uncommitted"
    assert unknown == [], "paid at the provider, unknown to the journal"

    result = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert result.exit_code == ExitCode.OK
    assert Counter(p["reference"] for p in sandbox.ledger()) == Counter(
        r["reference"] for r in rows
    )

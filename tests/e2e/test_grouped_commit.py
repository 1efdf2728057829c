"""Grouped journal commits: many state changes per COMMIT, never a request before its intent."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import httpx
import pytest

import batchpay.journal as journal_mod
from batchpay import pipeline
from batchpay.config import Settings
from batchpay.errors import ExitCode
from batchpay.journal import Journal
from batchpay.sandbox import Sandbox

from .conftest import payee, run_kwargs, write_csv

pytestmark = pytest.mark.anyio

# Where each keyed POST's key must already be committed, by path.
_KEY_TABLES = {"/v1/payouts": "payouts", "/v1/beneficiaries": "beneficiaries"}


class _CheckCommitted(httpx.AsyncBaseTransport):
    """Before each keyed POST reaches the sandbox, read its key from the journal through
    another connection: only what is committed is visible there."""

    def __init__(self, inner: httpx.AsyncBaseTransport, journal_path: Path) -> None:
        self.inner = inner
        self.journal_path = journal_path
        self.checked: Counter[str] = Counter()
        self.uncommitted: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("idempotency-key")
        path = request.url.path
        table = _KEY_TABLES.get(path) or ("instruments" if path.endswith("/instruments") else None)
        if request.method == "POST" and key and table:
            other = sqlite3.connect(self.journal_path)
            try:
                found = other.execute(
                    f"SELECT 1 FROM {table} WHERE idempotency_key=?", (key,)
                ).fetchone()
            finally:
                other.close()
            self.checked[table] += 1
            if found is None:
                self.uncommitted.append(f"{path} {key}")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_every_key_is_committed_before_its_request_leaves(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """40 new payees, many in flight: each creation and payout key is committed when sent."""
    rows = [payee(i) for i in range(40)]
    f = write_csv(tmp_path / "p.csv", rows)
    kwargs = run_kwargs(sandbox, settings, tmp_path)
    check = _CheckCommitted(kwargs["transport"], settings.journal_path)
    kwargs["transport"] = check
    result = await pipeline.run_async(f, **kwargs)
    assert result.exit_code == ExitCode.OK
    assert check.uncommitted == []
    assert check.checked == {"payouts": 40, "beneficiaries": 40, "instruments": 40}
    assert Counter(p["reference"] for p in sandbox.ledger()) == Counter(
        r["reference"] for r in rows
    )


async def test_a_run_commits_far_fewer_times_than_it_changes_state(
    sandbox: Sandbox, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100 rows to new payees change about 12 states each; the run commits under 2 per row."""
    commits: list[str] = []

    def count_commits(db: sqlite3.Connection) -> None:
        db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)

    rows = [payee(i) for i in range(100)]
    f = write_csv(tmp_path / "p.csv", rows)
    monkeypatch.setattr(journal_mod, "connection_hook", count_commits)
    result = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert result.exit_code == ExitCode.OK
    assert len(sandbox.ledger()) == 100
    assert len(commits) < 2 * len(rows), len(commits)
    with Journal(settings.journal_path) as j:
        states = Counter(p["state"] for p in j.db.execute("SELECT state FROM payouts"))
    assert states == {"created": 100}

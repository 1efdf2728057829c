"""State files: a restarted sandbox still has its payouts, keys and balances."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from batchpay.sandbox import Sandbox, SandboxConfig

from .helpers import make_payee, payout, post

pytestmark = pytest.mark.anyio


async def test_restart_keeps_payouts_keys_and_balances(tmp_path: Path) -> None:
    """After a restart on the same file: same ledger, same balance, and the key replays."""
    state = str(tmp_path / "sandbox.db")
    # Both lives of the sandbox start their manual clock at the same instant: a restart that
    # straddles a second boundary must not move payouts along.
    start = datetime(2026, 6, 1, 9, 0, 0, tzinfo=UTC)
    first = Sandbox(SandboxConfig(state_path=state, manual_clock=True, clock_start=start))
    async with first.client() as client:
        ben, ins = await make_payee(client)
        body = payout(ben, ins, "40.00")
        created = await post(client, "/v1/payouts", body, key="persist-1")
    balance = first.balance("GBP")
    ledger = first.ledger()
    await first.aclose()

    second = Sandbox(SandboxConfig(state_path=state, manual_clock=True, clock_start=start))
    try:
        assert second.ledger() == ledger
        assert second.balance("GBP") == balance
        async with second.client() as client:
            replay = await post(client, "/v1/payouts", body, key="persist-1")
            fetched = await client.get(f"/v1/payouts/{created.json()['id']}")
        assert replay.headers["x-idempotent-replayed"] == "true"
        assert replay.json()["id"] == created.json()["id"]
        assert fetched.status_code == 200
        assert len(second.ledger()) == 1
    finally:
        await second.aclose()


async def test_balances_are_seeded_once(tmp_path: Path) -> None:
    """Reopening a state file does not reload the preset balances over the spent ones."""
    state = str(tmp_path / "s.db")
    sb = Sandbox(SandboxConfig(state_path=state))
    sb.set_balance("USD", "5.00")
    await sb.aclose()
    again = Sandbox(SandboxConfig(state_path=state))
    try:
        assert again.balance("USD")["available"] == "5.00"
    finally:
        await again.aclose()


async def test_reset_forgets_everything(sandbox: Sandbox) -> None:
    """reset() empties the books and restores the configured balances."""
    sandbox.set_balance("USD", "1.00")
    sandbox.reset()
    assert sandbox.balance("USD")["available"] == "1000000.00"
    assert sandbox.ledger() == []

"""A sweep high-water mark ahead of the provider's clock would hide payouts forever.

Found with the sandbox's own persistence: a ``--state`` sandbox whose clock was advanced
forgot the advance when restarted, so its clock went back while the homes' marks stayed
ahead, and B paid A's later payouts again once their keys expired. A provider's clock does
not go back: the sandbox now keeps its clock's advance in its state file.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from batchpay import pipeline
from batchpay.sandbox import Sandbox, SandboxConfig
from batchpay.testing import sandbox_settings

from .conftest import payee, run_kwargs, write_csv

pytestmark = pytest.mark.anyio
HOUR = 3600.0


async def test_a_mark_ahead_of_the_provider_pays_again(tmp_path: Path) -> None:
    state = str(tmp_path / "sandbox.db")
    cfg = SandboxConfig(state_path=state, manual_clock=True, rate_limit_per_minute=None)
    a = sandbox_settings(tmp_path / "a")
    b = sandbox_settings(tmp_path / "b")
    sb = Sandbox(cfg)
    await sb.advance(25 * HOUR)
    await pipeline.run_async(
        write_csv(tmp_path / "x.csv", [payee(0)]), **run_kwargs(sb, b, tmp_path / "b")
    )
    await sb.aclose()

    sb = Sandbox(cfg)  # restarted with its state: the clock is "now" again
    try:
        f = write_csv(tmp_path / "f.csv", [payee(10), payee(11)])
        await pipeline.run_async(f, **run_kwargs(sb, a, tmp_path / "a"))
        await sb.advance(26 * HOUR)
        await pipeline.run_async(f, **run_kwargs(sb, b, tmp_path / "b"))
        counts = Counter(p["reference"] for p in sb.ledger())
    finally:
        await sb.aclose()
    assert all(n == 1 for n in counts.values()), counts

"""Benchmark: requests in one polling round over N open payouts.

Pays N generated rows into an in-process sandbox (manual clock, no rate limit) without
waiting, then runs one tracking round twice: before the sandbox clock moves (nothing has
news) and after it moves on far enough for every payout to settle. Prints, as JSON, the
requests each round made, counted from the journal's own API-call records.

    python scripts/bench_track.py --payouts 5000

Target (issue "Fast where users wait"): <= 60 requests a round over 5,000 open payouts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import _tree  # noqa: F401  (first: this tree's batchpay, for the script and its children)

from batchpay import pipeline, track
from batchpay.client import set_testing
from batchpay.config import Settings
from batchpay.connection import connect
from batchpay.journal import Journal
from batchpay.pipeline import RunOptions
from batchpay.sandbox import Sandbox, SandboxConfig
from batchpay.testing import payout_row, sandbox_settings, write_csv


async def _round(sandbox: Sandbox, settings: Settings, run_id: str) -> dict[str, Any]:
    with Journal(settings.journal_path, clock=sandbox.clock.now) as journal:
        before = journal.db.execute("SELECT COALESCE(MAX(id), 0) FROM api_calls").fetchone()[0]
        async with connect(
            settings, journal, transport=sandbox.transport(), clock=sandbox.clock.now
        ) as conn:
            conn.run_id = run_id
            ids = track.pending_payouts(journal, run_id)
            pending = await track.refresh(conn.client, journal, ids)
        paths = Counter(
            "GET /v1/payouts" if r[0] == "/v1/payouts" else "GET /v1/payouts/{id}"
            for r in journal.db.execute("SELECT path FROM api_calls WHERE id > ?", (before,))
        )
    return {"open": len(ids), "still_pending": pending, "requests": sum(paths.values()), **paths}


async def measure(payouts: int, work: Path) -> dict[str, Any]:
    """Pay ``payouts`` rows, then count the requests of two polling rounds."""
    set_testing(True)
    sandbox = Sandbox(SandboxConfig(manual_clock=True, rate_limit_per_minute=None))
    for currency in ("USD", "EUR", "GBP"):
        sandbox.set_balance(currency, "1000000000.00")
    try:
        settings = sandbox_settings(work)
        f = write_csv(work / "pay.csv", [payout_row(i) for i in range(payouts)])
        run = await pipeline.run_async(
            f,
            settings=settings,
            options=RunOptions(out_dir=work / "reports", concurrency=32),
            transport=sandbox.transport(),
            clock=sandbox.clock.now,
        )
        unmoved = await _round(sandbox, settings, run.run_id)
        await sandbox.advance(3600)
        settled = await _round(sandbox, settings, run.run_id)
    finally:
        await sandbox.aclose()
    return {"payouts": payouts, "round_before_any_moved": unmoved, "round_after_all_moved": settled}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures as JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--payouts", type=int, default=5000)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="batchpay-bench-") as tmp:
        figures = asyncio.run(measure(args.payouts, Path(tmp)))
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Requests and wall time of ``--via rows`` and ``--via batches``, measured on whole CLI runs.

Starts one ``batchpay sandbox serve`` (rate limit off, so the figures are batchpay's own; the
minimum time at the default 1,000 requests a minute is printed beside them), then runs
``batchpay run`` as whole processes, each mode on its own N rows against the same server:

1. a first file of N rows to N new payees (a fresh home per mode);
2. a second file of N new references to the same payees, in the same home (known payees).

Requests are counted from each run's journal (every HTTP attempt is recorded there); wall
time is the process's, start to exit. The per-row mode is the baseline of the same run.

    python scripts/bench_batches.py --rows 5000
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import _tree  # noqa: F401  (first: this tree's batchpay, for the script and its children)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from server import sandbox_server

from batchpay.sandbox import DEFAULT_API_KEY
from batchpay.testing import payout_row, write_csv

LIMIT_PER_MINUTE = 1000


def _fund(url: str, currency: str, available: str) -> None:
    """Set a sandbox balance (``POST /_sandbox/balances``)."""
    body = json.dumps({"currency": currency, "available": available}).encode()
    req = urllib.request.Request(url + "/_sandbox/balances", data=body,
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=10):
        pass


def _template(path: str) -> str:
    """A request path with its ids as ``{id}``, to count requests per route."""
    return "/".join(
        "{id}" if seg[:4] in ("ben_", "bat_", "pay_") else seg for seg in path.split("/")
    )


def _fund(url: str, currency: str, available: str) -> None:
    """Set a sandbox balance (``POST /_sandbox/balances``)."""
    body = json.dumps({"currency": currency, "available": available}).encode()
    req = urllib.request.Request(url + "/_sandbox/balances", data=body,
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=10):
        pass


def _template(path: str) -> str:
    """A request path with its ids as ``{id}``, to count requests per route."""
    return "/".join("{id}" if s[:4] in ("ben_", "bat_", "pay_") else s for s in path.split("/"))


def _run(work: Path, home: str, url: str, f: Path, via: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHPAY_")}
    env.update(BATCHPAY_API_KEY=DEFAULT_API_KEY, BATCHPAY_API_URL=url,
               BATCHPAY_HOME=str(work / home), BATCHPAY_HTTP_TIMEOUT="120")  # fmt: skip
    cmd = [sys.executable, "-m", "batchpay.cli", "run", str(f), "--out", str(work / "r"),
           "--via", via, "--concurrency", "32", "--skip-balance-check"]  # fmt: skip
    if via == "batches":
        cmd.append("--confirm")
    t0 = time.monotonic()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    db = sqlite3.connect(work / home / "journal.db")
    run_id = db.execute("SELECT id FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()[0]
    calls = Counter(
        f"{m} {_template(p)}"
        for m, p in db.execute("SELECT method, path FROM api_calls WHERE run_id=?", (run_id,))
    )
    outcomes = Counter(
        r[0]
        for r in db.execute(
            "SELECT COALESCE(p.state, rows.state) FROM rows LEFT JOIN payouts p"
            " ON p.idempotency_key = rows.idempotency_key WHERE rows.run_id=?",
            (run_id,),
        )
    )
    db.close()
    total = sum(calls.values())
    return {
        "exit": done.returncode,
        "requests": total,
        "requests_per_row": round(total / max(1, sum(outcomes.values())), 4),
        "wall_seconds": round(wall, 1),
        "minimum_minutes_at_1000_per_minute": round(total / LIMIT_PER_MINUTE, 2),
        "by_route": dict(calls.most_common()),
        "journal_states": dict(outcomes),
        "stderr_tail": done.stderr.strip().splitlines()[-1:] if done.returncode else [],
    }


def main() -> int:
    """Measure both modes, first with new payees and then with known ones; print JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=5000)
    args = p.parse_args()
    n = args.rows
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="batchpay-batches-") as tmp:
        work = Path(tmp)
        with sandbox_server(work, "--rate-limit", "off") as server:
            for currency in ("EUR", "USD", "GBP"):  # 20,000 payouts of up to 5,100 each
                _fund(server.url, currency, "1000000000.00")
            for k, via in enumerate(("rows", "batches")):
                # Each mode its own payees and references; the same amounts in both.
                base = k * n
                first = write_csv(
                    work / f"{via}-1.csv",
                    [payout_row(base + i, amount=payout_row(i)["amount"]) for i in range(n)],
                )
                again = write_csv(
                    work / f"{via}-2.csv",
                    [payout_row(base + i, reference=f"AGAIN-{base + i}",
                                amount=payout_row(i)["amount"]) for i in range(n)],
                )  # fmt: skip
                results[f"{via}: new payees"] = _run(work, f"home-{via}", server.url, first, via)
                results[f"{via}: known payees"] = _run(work, f"home-{via}", server.url, again, via)
            ledger = server.ledger()
    per_ref = Counter(p["reference"] for p in ledger)
    summary = {
        "rows": n,
        "results": results,
        "server_payouts": len(ledger),
        "paid_twice": sum(1 for v in per_ref.values() if v > 1),
        "ratios_batches_over_rows": {
            case: {
                "requests": round(
                    float(results[f"batches: {case}"]["requests"])  # type: ignore[arg-type]
                    / float(results[f"rows: {case}"]["requests"]),  # type: ignore[arg-type]
                    4,
                ),
                "wall": round(
                    float(results[f"batches: {case}"]["wall_seconds"])  # type: ignore[arg-type]
                    / float(results[f"rows: {case}"]["wall_seconds"]),  # type: ignore[arg-type]
                    3,
                ),
            }
            for case in ("new payees", "known payees")
        },
    }
    print(json.dumps(summary, indent=2))
    return 0 if summary["paid_twice"] == 0 and len(ledger) == 4 * n else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""What the provider-ledger sweep costs, measured on the command a user runs.

Starts ``batchpay sandbox serve`` (no rate limit), then runs ``batchpay run`` as whole
processes: a first file of N rows (new payees), a second file of N new references to the same
payees in the same home (an up-to-date journal), and the first file again from a fresh home
(a journal that bootstraps over the provider's history). Prints requests per payout for each,
counted from the journals' own API-call records.

    python scripts/bench_ledger.py --rows 1000
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
from collections import Counter
from pathlib import Path

import _tree  # noqa: F401  (first: this tree's batchpay, for the script and its children)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from server import sandbox_server

from batchpay.sandbox import DEFAULT_API_KEY
from batchpay.testing import payout_row, write_csv


def _run(work: Path, home: str, url: str, f: Path) -> tuple[int, Counter[str], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHPAY_")}
    env.update(BATCHPAY_API_KEY=DEFAULT_API_KEY, BATCHPAY_API_URL=url,
               BATCHPAY_HOME=str(work / home))  # fmt: skip
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "batchpay.cli", "run", str(f), "--out", str(work / "r"),
         "--concurrency", "32"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.monotonic() - t0
    db = sqlite3.connect(work / home / "journal.db")
    run_id = db.execute("SELECT id FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()[0]
    calls = Counter(
        f"{m} {p if not p.startswith('/v1/beneficiaries/') else '/v1/beneficiaries/{id}/…'}"
        for m, p in db.execute("SELECT method, path FROM api_calls WHERE run_id=?", (run_id,))
    )
    db.close()
    return done.returncode, calls, wall


def main() -> int:
    """Run the three measurements and print them as JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1000)
    args = p.parse_args()
    n = args.rows
    with tempfile.TemporaryDirectory(prefix="batchpay-ledger-") as tmp:
        work = Path(tmp)
        first = write_csv(work / "a.csv", [payout_row(i) for i in range(n)])
        second = write_csv(
            work / "b.csv", [payout_row(i, reference=f"INV-NEXT-{i}") for i in range(n)]
        )
        with sandbox_server(work, "--rate-limit", "off", "--step-seconds", "60") as server:
            results = {}
            steps = [
                ("first run, new payees", "a", first),
                ("second run, new rows, up-to-date journal", "a", second),
                ("same file from a fresh home (bootstrap)", "b", first),
            ]
            for name, home, f in steps:
                code, calls, wall = _run(work, home, server.url, f)
                total = sum(calls.values())
                payouts = n if home == "a" else 0
                results[name] = {
                    "exit": code,
                    "requests": total,
                    "requests_per_row": round(total / n, 4),
                    "payout_posts": calls["POST /v1/payouts"],
                    "ledger_pages": calls["GET /v1/payouts"],
                    "wall_s": round(wall, 1),
                    "payouts_made": payouts,
                }
            results["ledger_payouts_at_the_end"] = len(server.ledger())
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

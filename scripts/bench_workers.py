"""Several workers on one run: payouts per second for 1, 2 and 4 workers on PostgreSQL.

Each measurement starts its own ``batchpay sandbox serve`` (rate tier 20, 100 ms latency on
every request) and times whole ``batchpay run FILE`` processes from start to the last exit:
first the single-process SQLite figure (the baseline, measured in the same run), then 1, 2
and 4 workers started at once on one PostgreSQL journal (a throw-away cluster, or
``BATCHPAY_TEST_POSTGRES_URL``). Each also checks, from the server's ledger, that every row
was paid exactly once. Prints one line per configuration and a JSON summary.

    python scripts/bench_workers.py --rows 5000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _tree  # noqa: F401  (first: this tree's batchpay, for the script and its children)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from server import sandbox_server

from batchpay.sandbox import DEFAULT_API_KEY
from batchpay.testing import payout_row, write_csv
from batchpay.testing_postgres import Cluster, new_database


def _measure(
    work: Path, name: str, f: Path, n_rows: int, workers: int, journal: str | None, conc: int
) -> dict[str, Any]:
    """Start ``workers`` processes on ``f`` against a fresh server; time them all."""
    with sandbox_server(work, "--rate-tier", "20", "--latency-ms", "100") as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHPAY_")}
        env.update(BATCHPAY_API_KEY=DEFAULT_API_KEY, BATCHPAY_API_URL=server.url,
                   BATCHPAY_HOME=str(work / name))  # fmt: skip
        if journal is not None:
            env["BATCHPAY_JOURNAL"] = journal
        logs = [(work / f"{name}-{i}.log").open("wb") for i in range(workers)]
        t0 = time.monotonic()
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "batchpay.cli",
                    "run",
                    str(f),
                    "--out",
                    str(work / f"{name}-reports-{i}"),
                    "--concurrency",
                    str(conc),
                    "--skip-balance-check",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            for i, log in enumerate(logs)
        ]
        codes = [p.wait() for p in procs]
        wall = time.monotonic() - t0
        for log in logs:
            log.close()
        paid = Counter(p["reference"] for p in server.ledger())
    once = len(paid) == n_rows and set(paid.values()) == {1}
    return {
        "config": name,
        "workers": workers,
        "exit_codes": codes,
        "seconds": round(wall, 2),
        "payouts_per_second": round(n_rows / wall, 1),
        "paid_exactly_once": once,
    }


def main() -> int:
    """Measure the baseline and 1, 2, 4 workers; print each beside the baseline."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=5000)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight per process")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="batchpay-workers-") as tmp:
        work = Path(tmp)
        # Small amounts, so 5,000 rows stay inside the sandbox's opening balances.
        rows = [payout_row(i, amount=f"1.{i % 90:02d}") for i in range(args.rows)]
        f = write_csv(work / "payouts.csv", rows)
        server_url = os.environ.get("BATCHPAY_TEST_POSTGRES_URL")
        cluster = None if server_url else Cluster().start()
        try:
            pg = server_url or (cluster.url if cluster else "")
            results = [_measure(work, "sqlite-1", f, args.rows, 1, None, args.concurrency)]
            for n in args.workers:
                results.append(
                    _measure(work, f"postgresql-{n}", f, args.rows, n, new_database(pg),
                             args.concurrency)
                )  # fmt: skip
        finally:
            if cluster is not None:
                cluster.stop()
    base = results[0]["payouts_per_second"]
    for r in results:
        r["ratio_to_sqlite"] = round(r["payouts_per_second"] / base, 2)
        print(
            f"{r['config']:>14}: {r['payouts_per_second']:7.1f} payouts/s "
            f"({r['seconds']} s; {r['ratio_to_sqlite']}x the single-process SQLite figure; "
            f"exits {r['exit_codes']}; paid exactly once: {r['paid_exactly_once']})",
            file=sys.stderr,
        )
    print(json.dumps({"rows": args.rows, "results": results}, indent=2))
    ok = all(r["paid_exactly_once"] and set(r["exit_codes"]) == {0} for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

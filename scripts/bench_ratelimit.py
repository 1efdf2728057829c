"""Benchmark: how well a run fills the provider's rate limit without tripping it.

Starts the sandbox server at 1,000 requests/minute (no other faults), runs
``batchpay run`` on a generated file big enough to keep it busy for a few minutes, and
reads every HTTP attempt back from the journal. Prints, as JSON:

* the sustained request rate over the run (requests per minute between the first and
  the last request) and as a share of the limit;
* the busiest and the quietest full 60-second window;
* the share of requests answered 429.

    python scripts/bench_ratelimit.py                 # ~3 minutes at 1,000/min
    python scripts/bench_ratelimit.py --rows 300 --limit 600

Target (issue 4): >= 95 % of the limit sustained, <= 1 % of requests answered 429.
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
from datetime import datetime
from pathlib import Path

import _tree  # noqa: F401  (first: this tree's batchpay, for the script and its children)

from batchpay.sandbox import DEFAULT_API_KEY
from batchpay.testing import payout_row, write_csv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chaos import _free_port, _get


def measure(args: argparse.Namespace, work: Path) -> dict[str, object]:
    """Run the benchmark in ``work`` and return its figures."""
    rows = [payout_row(i) for i in range(args.rows)]
    f = write_csv(work / "payouts.csv", rows)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "batchpay.sandbox", "serve", "--host", "127.0.0.1",
         "--port", str(port), "--rate-limit", str(args.limit), "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                _get(base + "/_sandbox/health")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("server did not start") from None
                time.sleep(0.1)
        env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHPAY_")}
        env.update(BATCHPAY_API_KEY=DEFAULT_API_KEY, BATCHPAY_API_URL=base,
                   BATCHPAY_HOME=str(work / "home"))  # fmt: skip
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "batchpay.cli", "run", str(f), "--out", str(work / "r"),
             "--concurrency", str(args.concurrency)],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        wall = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(timeout=10)
    db = sqlite3.connect(work / "home" / "journal.db")
    calls = [
        (datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp(), status)
        for t, status in db.execute("SELECT started_at, status FROM api_calls ORDER BY started_at")
    ]
    db.close()
    times = [t for t, _ in calls]
    span = times[-1] - times[0]
    per_min = len(times) / span * 60 if span > 0 else 0.0
    windows = []
    j = 0
    for i, t in enumerate(times):
        while times[j] < t - 60:
            j += 1
        if t - times[0] >= 60:
            windows.append(i - j + 1)
    too_many = sum(1 for _, s in calls if s == 429)
    return {
        "limit_per_minute": args.limit,
        "rows": args.rows,
        "exit_code": proc.returncode,
        "requests": len(calls),
        "wall_seconds": round(wall, 1),
        "span_seconds": round(span, 1),
        "sustained_per_minute": round(per_min, 1),
        "share_of_limit": round(per_min / args.limit, 4),
        "busiest_60s_window": max(windows, default=0),
        "quietest_full_60s_window": min(windows, default=0),
        "answered_429": too_many,
        "share_429": round(too_many / len(calls), 5) if calls else 0.0,
        "target_met": per_min / args.limit >= 0.95 and too_many <= 0.01 * len(calls),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures as JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=8)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="batchpay-bench-") as tmp:
        figures = measure(args, Path(tmp))
    print(json.dumps(figures, indent=2))
    return 0 if figures["target_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

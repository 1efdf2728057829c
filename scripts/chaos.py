"""Chaos run: a faulty sandbox server, batchpay killed with SIGKILL at random moments.

Starts ``batchpay sandbox serve`` in its own process with faults on (5xx, 429, lost
responses, timeouts), then runs ``batchpay run FILE`` against it again and again, killing
it with SIGKILL after a random delay, until the requested number of kills has happened;
then lets it finish. Finally it checks, from the server's own ledger, that every row was
paid exactly once and none is missing, and that the report agrees with the ledger.

    python scripts/chaos.py --rows 200 --kills 20          # what CI runs
    python scripts/chaos.py --rows 2000 --kills 200 --seed 3

Prints a JSON summary and exits non-zero if the promise was broken.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from batchpay.sandbox import DEFAULT_API_KEY
from batchpay.testing import payout_row, write_csv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _start_server(port: int, args: argparse.Namespace, log: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "batchpay.sandbox", "serve",
        "--host", "127.0.0.1", "--port", str(port),
        "--fault-5xx", str(args.fault_5xx), "--fault-429", str(args.fault_429),
        "--fault-lost", str(args.fault_lost), "--fault-timeout", str(args.fault_timeout),
        "--timeout-seconds", str(args.server_timeout), "--seed", str(args.seed),
        "--step-seconds", "0.5", "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            _get(f"http://127.0.0.1:{port}/_sandbox/health")
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"sandbox server did not start; see {log}")


def chaos(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Run the experiment in ``work``; return the summary."""
    rng = random.Random(args.seed)
    rows = [payout_row(i) for i in range(args.rows)]
    csv_path = write_csv(work / "payouts.csv", rows)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _start_server(port, args, work / "server.log")
    env = dict(os.environ)
    env.update(
        BATCHPAY_API_KEY=DEFAULT_API_KEY,
        BATCHPAY_API_URL=base,
        BATCHPAY_HOME=str(work / "home"),
        BATCHPAY_HTTP_TIMEOUT=str(args.client_timeout),
    )
    env.pop("BATCHPAY_API_KEY_FILE", None)
    run_cmd = [
        sys.executable, "-m", "batchpay.cli", "run", str(csv_path),
        "--out", str(work / "reports"), "--skip-balance-check",
    ]  # fmt: skip
    started = time.monotonic()
    kills = 0
    exits: list[int] = []
    log = (work / "batchpay.log").open("ab")
    try:
        while kills < args.kills:
            proc = subprocess.Popen(run_cmd, env=env, stdout=log, stderr=log)
            delay = rng.uniform(args.min_delay, args.max_delay)
            try:
                code = proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                continue
            exits.append(code)
            if code in (0, 1, 5):
                break  # finished before all kills landed
        final = None
        for _ in range(args.max_finishing_runs):
            code = subprocess.run(run_cmd, env=env, stdout=log, stderr=log).returncode
            exits.append(code)
            if code in (0, 1, 5):
                final = code
                break
        # Regenerate the report from the journal: it must agree with the server.
        subprocess.run(
            [sys.executable, "-m", "batchpay.cli", "report", "--out", str(work / "reports")],
            env=env, stdout=log, stderr=log, check=True,
        )  # fmt: skip
        ledger = _get(f"{base}/_sandbox/ledger")
        ledger = ledger.get("data", ledger) if isinstance(ledger, dict) else ledger
    finally:
        log.close()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()

    per_ref = Counter(p["reference"] for p in ledger)
    wanted = {r["reference"] for r in rows}
    duplicates = sorted(ref for ref, n in per_ref.items() if n > 1)
    missing = sorted(wanted - set(per_ref))
    strays = sorted(set(per_ref) - wanted)
    report_files = sorted((work / "reports").glob("*/*.json"))
    report = json.loads(report_files[-1].read_text()) if report_files else {"rows": []}
    by_ref = {p["reference"]: p for p in ledger}
    disagreements = [
        r["reference"]
        for r in report["rows"]
        if r["reference"] not in by_ref or r["payout_id"] != by_ref[r["reference"]]["id"]
    ]
    outcomes = Counter(r["outcome"] for r in report["rows"])
    ok = (
        not duplicates
        and not missing
        and not strays
        and not disagreements
        and len(report["rows"]) == len(rows)
        and outcomes.get("unknown", 0) == 0
    )
    return {
        "ok": ok,
        "rows": len(rows),
        "kills": kills,
        "exit_codes": exits,
        "final_exit": final,
        "ledger_payouts": len(ledger),
        "duplicates": duplicates,
        "missing": missing,
        "strays": strays,
        "report_disagreements": disagreements,
        "report_outcomes": dict(outcomes),
        "seconds": round(time.monotonic() - started, 1),
        "workdir": str(work),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=200)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--min-delay", type=float, default=0.4, help="seconds before a kill, at least")
    p.add_argument("--max-delay", type=float, default=2.0, help="seconds before a kill, at most")
    p.add_argument("--fault-5xx", type=float, default=0.10)
    p.add_argument("--fault-429", type=float, default=0.05)
    p.add_argument("--fault-lost", type=float, default=0.03)
    p.add_argument("--fault-timeout", type=float, default=0.02)
    p.add_argument("--server-timeout", type=float, default=2.0,
                   help="how long the server withholds a 'timeout' answer")  # fmt: skip
    p.add_argument("--client-timeout", type=float, default=1.0)
    p.add_argument("--max-finishing-runs", type=int, default=20)
    p.add_argument("--workdir", type=Path, help="keep the run's files here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the chaos experiment and print its JSON summary."""
    args = parse_args(argv)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        summary = chaos(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="batchpay-chaos-") as tmp:
            summary = chaos(args, Path(tmp))
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

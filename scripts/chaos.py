"""Chaos run: a faulty sandbox server, batchpay killed with SIGKILL at random moments.

Starts ``batchpay sandbox serve`` in its own process with faults on (5xx, 429, lost
responses, timeouts), then runs ``batchpay run FILE`` against it again and again, killing
it with SIGKILL after a random delay, until the requested number of kills has happened;
then lets it finish. Finally it checks, from the server's own ledger, that every row was
paid exactly once and none is missing, and that the report agrees with the ledger.

    python scripts/chaos.py --rows 200 --kills 20          # what CI runs
    python scripts/chaos.py --rows 2000 --kills 200 --seed 3

With ``--processes N`` (N >= 2) it runs N batchpay processes at once on the same file
against the one server, each slot starting ``batchpay run FILE`` again and again and
killing it after a random delay until the kill budget (shared by all slots) is spent.
``--homes`` says where their journals live: ``same`` (one BATCHPAY_HOME for all),
``different`` (one home per process) or ``mixed`` (processes 0 and 1 share a home, every
other process has its own). Each process spells the server's URL its own way
(``http://127.0.0.1:P``, ``http://localhost:P``, ``http://LOCALHOST:P/``) unless
``--url-spelling one``: the provider world must not depend on the spelling. Then every home
is finished with sequential runs, and the server's ledger and every home's report are
judged:

    python scripts/chaos.py --rows 60 --kills 10 --processes 3 --homes mixed   # CI
    python scripts/chaos.py --rows 300 --kills 50 --processes 3 --homes mixed --seed 5

With ``--auth oauth`` the server refuses API keys (``sandbox serve --auth oauth``) and every
batchpay process authenticates with the sandbox's test OAuth client and DPoP key: tokens are
minted, proofs made and checked under the same faults and kills.

    python scripts/chaos.py --rows 60 --kills 8 --auth oauth                    # CI

With ``--journal postgresql://…`` every process uses that one journal (a PostgreSQL server)
instead of its home's SQLite file, and the processes share the run's rows as workers
(a killed worker's rows are taken over after ``--lease`` seconds); homes only hold reports:

    python scripts/chaos.py --rows 60 --kills 10 --processes 3 --homes different \
        --journal postgresql://postgres@127.0.0.1:5432/chaos                   # CI

Prints a JSON summary and exits non-zero if the promise was broken.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import _tree  # noqa: F401  (first: this tree's batchpay, for the script and its children)

from batchpay.testing import payout_row, sandbox_env, write_csv


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
        "--step-seconds", "0.5", "--log-level", "warning", "--latency-ms", str(args.latency_ms),
        "--rate-limit", args.rate_limit,
        "--auth", "oauth" if args.auth == "oauth" else "both",
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


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()


def _judge(
    ledger: list[dict[str, Any]], rows: list[dict[str, str]]
) -> tuple[list[str], list[str], list[str]]:
    """The server ledger's verdict: references paid twice, never paid, and not in the file."""
    per_ref = Counter(p["reference"] for p in ledger)
    wanted = {r["reference"] for r in rows}
    duplicates = sorted(ref for ref, n in per_ref.items() if n > 1)
    return duplicates, sorted(wanted - set(per_ref)), sorted(set(per_ref) - wanted)


def chaos(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Run the experiment in ``work``; return the summary."""
    rng = random.Random(args.seed)
    rows = [payout_row(i) for i in range(args.rows)]
    csv_path = write_csv(work / "payouts.csv", rows)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _start_server(port, args, work / "server.log")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHPAY_")}
    env.update(sandbox_env(args.auth))
    env.update(
        BATCHPAY_API_URL=base,
        BATCHPAY_HOME=str(work / "home"),
        BATCHPAY_HTTP_TIMEOUT=str(args.client_timeout),
    )
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
        _stop(server)

    duplicates, missing, strays = _judge(ledger, rows)
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


# -- several processes at once -------------------------------------------------------------

FINISHED = (0, 1, 5)  # the run is done: paid (0), some rows failed (1), every row already paid (5)
LOCKED = 8  # another process holds this run in the same home


def _home_of_slot(slot: int, homes: str) -> int:
    """Which home process ``slot`` uses."""
    if homes == "same":
        return 0
    if homes == "different":
        return slot
    return max(slot - 1, 0)  # mixed: 0 and 1 share home 0, then one home each


def _spellings(port: int) -> list[str]:
    return [f"http://127.0.0.1:{port}", f"http://localhost:{port}", f"http://LOCALHOST:{port}/"]


class _Slot:
    """One process slot: its home, its URL spelling, its current process, its log."""

    def __init__(self, index: int, home: int, url: str, env: dict[str, str], log: Path) -> None:
        self.index = index
        self.home = home
        self.url = url
        self.env = env
        self.log = log.open("ab")
        self.proc: subprocess.Popen[bytes] | None = None
        self.deadline = 0.0
        self.not_before = 0.0
        self.started_at = 0.0
        self.retired_with: int | None = None
        self.kills = 0
        self.exits: Counter[int] = Counter()


def _judge_home_report(
    report: dict[str, Any], by_ref: dict[str, dict[str, Any]], n_rows: int
) -> dict[str, Any]:
    """Compare one home's report with the server's ledger."""
    disagreements = []
    already_paid_without_id = 0
    for r in report["rows"]:
        paid = by_ref.get(r["reference"])
        if r["outcome"] == "already_paid":
            # Paid from another journal or run: the row may carry the provider's payout id,
            # or none; if it carries one, it must be the ledger's.
            if paid is None or r["payout_id"] not in ("", paid["id"]):
                disagreements.append(r["reference"])
            elif r["payout_id"] == "":
                already_paid_without_id += 1
        elif paid is None or r["payout_id"] != paid["id"]:
            disagreements.append(r["reference"])
    outcomes = Counter(r["outcome"] for r in report["rows"])
    return {
        "report_run": report.get("run", {}).get("run_id"),
        "report_rows": len(report["rows"]),
        "report_outcomes": dict(outcomes),
        "already_paid_without_payout_id": already_paid_without_id,
        "report_disagreements": disagreements,
        "ok": not disagreements
        and len(report["rows"]) == n_rows
        and outcomes.get("unknown", 0) == 0,
    }


def _journal_runs(home: Path) -> list[dict[str, Any]]:
    """The runs a home's journal holds (read-only), to tell whether processes shared one."""
    path = home / "journal.db"
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        db.row_factory = sqlite3.Row
        return [
            {"id": r["id"], "status": r["status"]}
            for r in db.execute("SELECT id, status FROM runs ORDER BY created_at")
        ]
    finally:
        db.close()


def chaos_many(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Several batchpay processes at once, killed at random; return the summary."""
    rng = random.Random(args.seed)
    rows = [payout_row(i) for i in range(args.rows)]
    csv_path = write_csv(work / "payouts.csv", rows)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    spellings = _spellings(port) if args.url_spelling == "varied" else [base]
    server = _start_server(port, args, work / "server.log")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHPAY_")}
    base_env.update(sandbox_env(args.auth), BATCHPAY_HTTP_TIMEOUT=str(args.client_timeout))
    events = (work / "events.jsonl").open("a")
    t0 = time.monotonic()

    def note(**event: Any) -> None:
        events.write(json.dumps({"t": round(time.monotonic() - t0, 3), **event}) + "\n")
        events.flush()

    slots = []
    for i in range(args.processes):
        home = _home_of_slot(i, args.homes)
        url = spellings[i % len(spellings)]
        env = dict(base_env, BATCHPAY_API_URL=url, BATCHPAY_HOME=str(work / f"home{home}"))
        if args.journal:
            env["BATCHPAY_JOURNAL"] = args.journal  # one journal for every process
            env["BATCHPAY_WORKER_LEASE_SECONDS"] = str(args.lease)
        slots.append(_Slot(i, home, url, env, work / f"batchpay-{i}.log"))
    homes = sorted({s.home for s in slots})

    def run_cmd(home: int) -> list[str]:
        return [
            sys.executable, "-m", "batchpay.cli", "run", str(csv_path),
            "--out", str(work / f"reports{home}"), "--skip-balance-check",
        ]  # fmt: skip

    def ended(slot: _Slot, code: int) -> None:
        slot.exits[code] += 1
        note(slot=slot.index, home=slot.home, pid=slot.proc.pid if slot.proc else None,
             exit=code, ran=round(time.monotonic() - slot.started_at, 3))  # fmt: skip
        slot.proc = None
        if code in FINISHED:
            slot.retired_with = code  # its home's run is done: nothing left to kill
        elif code == LOCKED:
            slot.not_before = time.monotonic() + rng.uniform(0.2, 1.0)  # wait, then retry

    kills = 0
    finishing: dict[int, dict[str, Any]] = {}
    try:
        # Chaos: every slot starts, and is killed, until the shared kill budget is spent.
        while kills < args.kills and any(s.retired_with is None for s in slots):
            now = time.monotonic()
            for s in slots:
                if s.retired_with is not None:
                    continue
                if s.proc is None:
                    if now < s.not_before:
                        continue
                    s.proc = subprocess.Popen(run_cmd(s.home), env=s.env, stdout=s.log,
                                              stderr=s.log)  # fmt: skip
                    s.started_at = now
                    s.deadline = now + rng.uniform(args.min_delay, args.max_delay)
                    note(slot=s.index, home=s.home, pid=s.proc.pid, start=True, url=s.url)
                    continue
                code = s.proc.poll()
                if code is None and now >= s.deadline and kills < args.kills:
                    s.proc.send_signal(signal.SIGKILL)
                    code = s.proc.wait()
                    if code == -signal.SIGKILL:
                        kills += 1
                        s.kills += 1
                        note(slot=s.index, home=s.home, pid=s.proc.pid, killed=True,
                             ran=round(now - s.started_at, 3))  # fmt: skip
                        s.proc = None
                        continue
                if code is not None:
                    ended(s, code)
            time.sleep(0.02)
        # The budget is spent: the processes still running finish on their own.
        for s in slots:
            if s.proc is not None:
                ended(s, s.proc.wait(timeout=600))
        # Then every home is finished with one run after another.
        for h in homes:
            slot = next(s for s in slots if s.home == h)
            tally: Counter[int] = Counter()
            final = None
            runs = 0
            while runs < args.max_finishing_runs:
                code = subprocess.run(run_cmd(h), env=slot.env, stdout=slot.log,
                                      stderr=slot.log).returncode  # fmt: skip
                tally[code] += 1
                note(home=h, finishing=True, exit=code)
                if code in FINISHED:
                    final = code
                    break
                if code == LOCKED:
                    time.sleep(0.5)  # nothing of ours runs now, but wait it out all the same
                    if tally[LOCKED] <= 40:
                        continue
                runs += 1
            finishing[h] = {"final_exit": final, "finishing_exits": _codes(tally)}
        ledger = _get(f"{base}/_sandbox/ledger")
        ledger = ledger.get("data", ledger) if isinstance(ledger, dict) else ledger
        (work / "ledger.json").write_text(json.dumps(ledger, indent=1))
        # Regenerate each home's report from its journal: it must agree with the server.
        reports: dict[int, dict[str, Any]] = {}
        for h in homes:
            slot = next(s for s in slots if s.home == h)
            out = work / f"final-report{h}"
            subprocess.run(
                [sys.executable, "-m", "batchpay.cli", "report", "--out", str(out)],
                env=slot.env, stdout=slot.log, stderr=slot.log, check=True,
            )  # fmt: skip
            files = sorted(out.glob("*/*.json"))
            reports[h] = json.loads(files[-1].read_text()) if files else {"rows": []}
    finally:
        events.close()
        for s in slots:
            if s.proc is not None and s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait()
            s.log.close()
        _stop(server)

    duplicates, missing, strays = _judge(ledger, rows)
    by_ref = {p["reference"]: p for p in ledger}
    per_home = []
    for h in homes:
        judged = _judge_home_report(reports[h], by_ref, len(rows))
        mine = [s for s in slots if s.home == h]
        per_home.append({
            "home": f"home{h}",
            "processes": [s.index for s in mine],
            "urls": sorted({s.url for s in mine}),
            "kills": sum(s.kills for s in mine),
            "chaos_exits": _codes(sum((s.exits for s in mine), Counter())),
            **finishing[h],
            "journal_runs": [] if args.journal else _journal_runs(work / f"home{h}"),
            **judged,
        })  # fmt: skip
    exits: Counter[int] = sum((s.exits for s in slots), Counter())
    for f in finishing.values():
        exits.update({int(k): v for k, v in f["finishing_exits"].items()})
    internal_errors = exits.get(70, 0)  # batchpay crashed: a bug even if nothing was paid twice
    ok = (
        not duplicates
        and not missing
        and not strays
        and not internal_errors
        and all(h["ok"] and h["final_exit"] in FINISHED for h in per_home)
    )
    return {
        "ok": ok,
        "rows": len(rows),
        "processes": args.processes,
        "homes": args.homes,
        "url_spelling": args.url_spelling,
        "kills": kills,
        "exit_codes": _codes(exits),
        "internal_errors": internal_errors,
        "ledger_payouts": len(ledger),
        "duplicates": duplicates,
        "duplicate_payouts": {
            ref: [
                {k: p.get(k) for k in ("id", "idempotency_key", "status", "created_at")}
                for p in ledger
                if p["reference"] == ref
            ]
            for ref in duplicates
        },
        "missing": missing,
        "strays": strays,
        "per_home": per_home,
        "seconds": round(time.monotonic() - t0, 1),
        "workdir": str(work),
    }


def _codes(tally: Counter[int]) -> dict[str, int]:
    """Exit-code counts with string keys, smallest code first."""
    return {str(k): v for k, v in sorted(tally.items())}


def experiment(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One process at a time (the original experiment) or several at once."""
    if args.processes == 1:
        return chaos(args, work)
    return chaos_many(args, work)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=200)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--min-delay", type=float,
                   help="seconds before a kill, at least (0.4; many processes: 1.0)")  # fmt: skip
    p.add_argument("--max-delay", type=float,
                   help="seconds before a kill, at most (2.0; many processes: 6.0)")  # fmt: skip
    p.add_argument("--fault-5xx", type=float, default=0.10)
    p.add_argument("--fault-429", type=float, default=0.05)
    p.add_argument("--fault-lost", type=float, default=0.03)
    p.add_argument("--fault-timeout", type=float, default=0.02)
    p.add_argument("--server-timeout", type=float, default=2.0,
                   help="how long the server withholds a 'timeout' answer")  # fmt: skip
    p.add_argument("--client-timeout", type=float, default=1.0)
    p.add_argument("--rate-limit", default="1000", help="the server's limit per minute, or 'off'")
    p.add_argument("--latency-ms", type=int, default=0,
                   help="latency the server adds to every answer")  # fmt: skip
    p.add_argument("--max-finishing-runs", type=int, default=20)
    p.add_argument("--workdir", type=Path, help="keep the run's files here")
    p.add_argument("--processes", type=int, default=1,
                   help="batchpay processes running at once (1: one at a time)")  # fmt: skip
    p.add_argument("--homes", choices=("same", "different", "mixed"), default="mixed",
                   help="with --processes >= 2: one BATCHPAY_HOME for all, one per process, "
                   "or processes 0 and 1 sharing one and the others their own")  # fmt: skip
    p.add_argument("--url-spelling", choices=("varied", "one"), default="varied",
                   help="with --processes >= 2: spell the URL differently per process")  # fmt: skip
    p.add_argument("--auth", choices=("keys", "oauth"), default="keys",
                   help="credential generation: the test API key, or the test OAuth client "
                   "with its DPoP key against a server that refuses keys")  # fmt: skip
    p.add_argument("--journal",
                   help="one journal for every process, e.g. postgresql://user@host/db "
                   "(default: each home's own SQLite journal)")  # fmt: skip
    p.add_argument("--lease", type=float, default=3.0,
                   help="with a PostgreSQL --journal: seconds a killed worker's rows stay "
                   "claimed before the others take them over")  # fmt: skip
    args = p.parse_args(argv)
    if args.processes < 1:
        p.error("--processes must be at least 1")
    # Several processes start slower on a small machine (a start takes 2-4 s on 2 cores with
    # three at once), so their kills wait longer to land after the start, among the sends.
    many = args.processes > 1
    if args.min_delay is None:
        args.min_delay = 1.0 if many else 0.4
    if args.max_delay is None:
        args.max_delay = 6.0 if many else 2.0
    if args.max_delay < args.min_delay:
        p.error("--max-delay must not be below --min-delay")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the chaos experiment and print its JSON summary."""
    args = parse_args(argv)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        summary = experiment(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="batchpay-chaos-") as tmp:
            summary = experiment(args, Path(tmp))
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

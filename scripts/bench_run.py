"""What submission costs, measured on the command a user runs, beside a bare HTTP loop.

Starts ``batchpay sandbox serve`` (no rate limit, ``--latency-ms`` added to every answer),
then, each as a whole child process whose CPU and peak memory come from ``os.wait4``:

1. ``batchpay run`` of N rows to new payees (beneficiary, instrument, payout per row):
   requests per row and client CPU per row;
2. ``batchpay run`` of N new references to the same payees (known beneficiaries):
   payouts/s, client CPU per payout, peak RSS;
3. the baseline: a bare async HTTP loop (``--bare aiohttp``, 128 in flight by default)
   creating N payouts to the same payees on the same sandbox, and the ratio of 2. to it,
   with batchpay's CPU per payout beside the bare loop's: this VM's speed moves both alike
   (the bare loop's CPU per request is what a plain aiohttp client costs on it then).

``--bare`` may name several clients to compare them on the same sandbox (``aiohttp``;
a name again with ``#2`` measures it again, with keys of its own;
``httpx``: one ``httpx.AsyncClient``; ``httpx-sharded``: eight of them; ``httpx-aiohttp``:
httpx over :class:`batchpay.client.transport.AiohttpTransport`); the first is the baseline
of the ratio.

    python scripts/bench_run.py --rows 5000
    python scripts/bench_run.py --rows 5000 --repeat 5   # five fresh sandboxes: medians
    python scripts/bench_run.py --rows 2000 --bare aiohttp,httpx,httpx-sharded,httpx-aiohttp
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _tree  # noqa: F401  (first: this tree's batchpay, for the script and its children)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from server import sandbox_server

from batchpay.sandbox import DEFAULT_API_KEY
from batchpay.testing import payout_row, write_csv


def _measure(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``argv`` as a child; its exit, wall seconds, CPU seconds and peak RSS (MiB)."""
    t0 = time.monotonic()
    began = time.time()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    ended = time.time()
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "exit": proc.returncode,
        "began": began,
        "ended": ended,
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "stdout": out,
        "stderr": err[-2000:],
    }


def _run(
    work: Path, url: str, f: Path, extra: list[str], profile: str | None = None
) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHPAY_")}
    env.update(BATCHPAY_API_KEY=DEFAULT_API_KEY, BATCHPAY_API_URL=url,
               BATCHPAY_HOME=str(work / "home"))  # fmt: skip
    argv = [sys.executable, "-m", "batchpay.cli", "run", str(f),
            "--out", str(work / "r"), *extra]  # fmt: skip
    if profile:  # py-spy's collapsed stacks, e.g. for flamegraph.pl or speedscope
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))  # the venv's
        argv = [spy, "record", "-r", "250", "-f", "raw", "-o", profile, "--", *argv]
    _fund(url)
    m = _measure(argv, env)
    db = sqlite3.connect(work / "home" / "journal.db")
    run_id = db.execute("SELECT id FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()[0]
    # The process's own requests: those asked while it ran (the ledger look and balance
    # check leave before the run exists, so they carry no run id).
    since = datetime.fromtimestamp(m["began"], UTC).isoformat()
    m["requests"] = db.execute(
        "SELECT COUNT(*) FROM api_calls WHERE started_at >= ?", (since,)
    ).fetchone()[0]
    first, last = db.execute(
        "SELECT MIN(started_at), MAX(started_at) FROM api_calls "
        "WHERE run_id=? AND method='POST' AND path='/v1/payouts'",
        (run_id,),
    ).fetchone()
    if first and last:  # how long the payouts took to leave, beside the process's whole wall
        span = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()
        m["sending_span_s"] = round(span, 2)
        # Where the rest of the wall went: start-up and checks until the first request,
        # the ledger sweep (its pages, and until the first payout left), what followed.
        (start,) = db.execute(
            "SELECT MIN(started_at) FROM api_calls WHERE started_at >= ?", (since,)
        ).fetchone()
        pages, page0, page_n = db.execute(
            "SELECT COUNT(*), MIN(started_at), MAX(started_at) FROM api_calls WHERE "
            "started_at >= ? AND method='GET' AND path='/v1/payouts' AND started_at <= ?",
            (since, first),
        ).fetchone()
        at = {k: datetime.fromisoformat(v).timestamp() for k, v in
              (("start", start), ("first", first), ("last", last), ("page0", page0 or first),
               ("page_n", page_n or first))}  # fmt: skip
        m["phases_s"] = {
            "until_first_request": round(at["start"] - m["began"], 2),
            "sweep_and_checks_until_first_payout": round(at["first"] - at["start"], 2),
            "ledger_pages_before_first_payout": pages,
            "first_to_last_ledger_page_asked": round(at["page_n"] - at["page0"], 2),
            "sending": round(span, 2),
            "after_last_payout": round(m["ended"] - at["last"], 2),
        }
    m["created"] = db.execute(
        "SELECT COUNT(*) FROM payouts WHERE run_id=? AND state='created'", (run_id,)
    ).fetchone()[0]
    db.close()
    return m


def _fund(url: str) -> None:
    """Enough money in every currency the rows pay, so no step is refused for the balance."""
    for currency in ("EUR", "GBP", "USD"):
        data = json.dumps({"currency": currency, "available": "1000000000.00"}).encode()
        req = urllib.request.Request(url + "/_sandbox/balances", data=data, method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=10):
            pass


def _bodies(work: Path, n: int) -> list[dict[str, Any]]:
    """N payout bodies to the payees the first run created (fresh references and keys)."""
    db = sqlite3.connect(work / "home" / "journal.db")
    bodies = []
    for (text,) in db.execute("SELECT body FROM payouts ORDER BY row_number LIMIT ?", (n,)):
        body = json.loads(text)
        body["reference"] = f"BARE-{len(bodies)}"
        body["metadata"] = {}
        bodies.append(body)
    db.close()
    return bodies


async def _bare(url: str, client: str, inflight: int, bodies: list[dict[str, Any]]) -> int:
    """Create every body's payout, ``inflight`` at a time; return how many were created."""
    headers = {"Authorization": f"Bearer {DEFAULT_API_KEY}", "Content-Type": "application/json"}
    tag, client = client, client.partition("#")[0]  # "aiohttp#2": aiohttp again, new keys
    queue = list(enumerate(bodies))
    created = 0

    async def worker(post: Any) -> None:
        nonlocal created
        while queue:
            i, body = queue.pop()
            status = await post(
                json.dumps(body).encode(), {**headers, "Idempotency-Key": f"bare-{tag}-{i}"}
            )
            created += status == 201

    if client == "aiohttp":
        import aiohttp

        conn = aiohttp.TCPConnector(limit=inflight)
        async with aiohttp.ClientSession(url, connector=conn) as session:

            async def post(data: bytes, h: dict[str, str]) -> int:
                async with session.post("/v1/payouts", data=data, headers=h) as resp:
                    await resp.read()
                    return resp.status

            await asyncio.gather(*(worker(post) for _ in range(inflight)))
        return created
    import httpx

    shards = 8 if client == "httpx-sharded" else 1
    limits = httpx.Limits(
        max_connections=max(1, inflight // shards), max_keepalive_connections=None
    )
    if client == "httpx-aiohttp":  # httpx's interface over aiohttp's pool, as batchpay sends
        from batchpay.client.transport import AiohttpTransport

        clients = [httpx.AsyncClient(base_url=url, transport=AiohttpTransport(), timeout=60)]
    else:
        clients = [
            httpx.AsyncClient(base_url=url, limits=limits, timeout=60) for _ in range(shards)
        ]
    posts = []
    for c in clients:

        async def post(data: bytes, h: dict[str, str], c: httpx.AsyncClient = c) -> int:
            return (await c.post("/v1/payouts", content=data, headers=h)).status_code

        posts.append(post)
    await asyncio.gather(*(worker(posts[k % shards]) for k in range(inflight)))
    for c in clients:
        await c.aclose()
    return created


def _per(m: dict[str, Any], n: int) -> dict[str, Any]:
    return {
        "exit": m["exit"],
        "wall_s": round(m["wall_s"], 2),
        "payouts_per_s": round(n / m["wall_s"], 1),
        "cpu_ms_per_payout": round(m["cpu_s"] * 1000 / n, 3),
        "peak_rss_mib": m["peak_rss_mib"],
    }


def _one(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One measurement on a sandbox and home of its own: new payees, known payees, the
    bare loop(s), in that order."""
    n = args.rows
    extra = args.run_args.split()
    results: dict[str, Any] = {}
    work.mkdir(parents=True, exist_ok=True)
    first = write_csv(work / "a.csv", [payout_row(i) for i in range(n)])
    second = write_csv(work / "b.csv", [payout_row(i, reference=f"INV-NEXT-{i}") for i in range(n)])
    with sandbox_server(work, "--rate-limit", "off", "--step-seconds", "600",
                        "--latency-ms", str(args.latency_ms)) as server:  # fmt: skip
        prof = args.profile
        new = _run(work, server.url, first, extra, prof and f"{prof}-new.txt")
        results["new payees: batchpay run"] = {
            **_per(new, n),
            "created": new["created"],
            "requests_per_row": round(new["requests"] / n, 3),
            "cpu_ms_per_row": round(new["cpu_s"] * 1000 / n, 3),
        }
        known = _run(work, server.url, second, extra, prof and f"{prof}-known.txt")
        results["known payees: batchpay run"] = {
            **_per(known, n),
            "created": known["created"],
            "requests": known["requests"],
            "sending_span_s": known.get("sending_span_s"),
            "phases_s": known.get("phases_s"),
        }
        bodies = work / "bodies.json"
        bodies.write_text(json.dumps(_bodies(work, n)))
        for client in args.bare.split(","):
            _fund(server.url)
            m = _measure(
                [sys.executable, __file__, "--inflight", str(args.inflight),
                 "--bare-child", server.url, client, str(bodies)],
                dict(os.environ),
            )  # fmt: skip
            results[f"bare {client} loop, {args.inflight} in flight"] = _per(m, n)
            if m["exit"] != 0:
                results[f"bare {client} loop, {args.inflight} in flight"]["error"] = m["stderr"]
        results["ledger_payouts_at_the_end"] = len(server.ledger())
    base = results[f"bare {args.bare.split(',')[0]} loop, {args.inflight} in flight"]
    k = results["known payees: batchpay run"]
    results["ratio: batchpay run / bare loop, payouts/s"] = round(
        k["payouts_per_s"] / base["payouts_per_s"], 3
    )
    # The host's speed moves both processes' CPU alike (the bare loop's is what a plain
    # aiohttp client costs on this machine now): batchpay's CPU beside it.
    results["ratio: batchpay CPU / bare loop CPU, per payout"] = round(
        k["cpu_ms_per_payout"] / base["cpu_ms_per_payout"], 2
    )
    for m in (new, known):
        if m["exit"] != 0:
            results.setdefault("errors", []).append(m["stderr"])
    return results


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def main() -> int:
    """Run the measurements and print them as JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=5000)
    p.add_argument("--latency-ms", type=int, default=100)
    p.add_argument("--bare", default="aiohttp", help="baseline client(s), comma-separated")
    p.add_argument("--inflight", type=int, default=128, help="the bare loop's requests in flight")
    p.add_argument("--run-args", default="", help="extra arguments for batchpay run")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure this many times, each on a fresh sandbox and home; print each and "
        "the medians",
    )
    p.add_argument(
        "--profile",
        metavar="PREFIX",
        help="record both batchpay runs with py-spy to PREFIX-new.txt, PREFIX-known.txt",
    )
    p.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (journal, reports)")
    p.add_argument("--bare-child", nargs=3, metavar=("URL", "CLIENT", "BODIES"),
                   help=argparse.SUPPRESS)  # fmt: skip
    args = p.parse_args()
    if args.bare_child:
        url, client, path = args.bare_child
        bodies = json.loads(Path(path).read_text())
        made = asyncio.run(_bare(url, client, args.inflight, bodies))
        print(made)
        return 0 if made == len(bodies) else 1
    results: dict[str, Any] = {"rows": args.rows, "latency_ms": args.latency_ms}
    with tempfile.TemporaryDirectory(prefix="batchpay-run-") as tmp:
        root = Path(args.keep or tmp)
        each = [_one(args, root / f"m{i}" if args.repeat > 1 else root) for i in range(args.repeat)]
    if args.repeat == 1:
        results.update(each[0])
    else:
        results["measurements"] = each
        keys = [
            ("ratio: batchpay run / bare loop, payouts/s", None),
            ("ratio: batchpay CPU / bare loop CPU, per payout", None),
            ("known payees: batchpay run", "cpu_ms_per_payout"),
            ("known payees: batchpay run", "payouts_per_s"),
            (f"bare {args.bare.split(',')[0]} loop, {args.inflight} in flight",
             "cpu_ms_per_payout"),
            ("new payees: batchpay run", "cpu_ms_per_row"),
            ("new payees: batchpay run", "requests_per_row"),
        ]  # fmt: skip
        medians: dict[str, Any] = {}
        for key, field in keys:
            values = [m[key] if field is None else m[key][field] for m in each]
            name = key if field is None else f"{key}: {field}"
            medians[name] = {"median": round(_median(values), 3), "each": values}
        results["medians"] = medians
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
